// Element encodings of the wire dtypes (fp16, bf16, fp32) for the client side.
//
// The server has its own copy in engine/dtype.h: the layering (client -> proto only) keeps the
// two apart, and both follow IEEE 754 round-to-nearest-even, checked by the same style of test.
// Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "an1/v1/an1.pb.h"

namespace an1::client {

uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);
uint16_t FloatToBfloat16(float value);
float Bfloat16ToFloat(uint16_t bits);

// Encodes floats as little-endian elements of `dtype`.
std::string EncodeElements(const std::vector<float>& values, v1::DType dtype);
// Decodes little-endian elements of `dtype` to floats (bytes.size() must be a multiple of the
// element size; a trailing partial element is ignored).
std::vector<float> DecodeElements(const std::string& bytes, v1::DType dtype);

}  // namespace an1::client
