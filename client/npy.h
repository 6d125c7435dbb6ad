// Reading and writing NumPy .npy files (format versions 1.0 to 3.0, C order, little-endian
// float16 / float32 / float64, and int32 for index tensors), so that any tool can produce inputs
// and check outputs.
//
// Functions return false and set `error` to a message naming the file and the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/client.h"

namespace an1::client {

struct NpyArray {
  std::string descr;  // "<f2", "<f4", "<f8" or "<i4"
  std::vector<int64_t> shape;
  std::string data;  // raw little-endian elements, C order
};

bool ReadNpy(const std::string& path, NpyArray* array, std::string* error);
bool WriteNpy(const std::string& path, const NpyArray& array, std::string* error);

// Converts a float16/32/64 array to a tensor of `dtype` (rounding to nearest even).
bool NpyToTensor(const NpyArray& array, v1::DType dtype, HostTensor* tensor, std::string* error);
// An int32 array ("<i4") as a DTYPE_INT32 tensor (paged attention's index tensors).
bool NpyToIndexTensor(const NpyArray& array, HostTensor* tensor, std::string* error);
// fp32 -> "<f4", fp16 -> "<f2" (bytes as they are), bf16 -> "<f4" (exact widening), int32 -> "<i4".
NpyArray TensorToNpy(const HostTensor& tensor);

}  // namespace an1::client
