// Tensor descriptions the engine works on: a dtype, a shape and a byte span owned by the caller.
//
// Views never own their bytes; whoever builds one (the server, from a request message or a
// shared region) keeps the bytes alive until the engine reports completion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/dtype.h"

namespace an1 {

// Read-only input tensor: row-major, contiguous.
struct TensorView {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
  // -1: `data` is host memory. N >= 0: `data` is memory of CUDA device N (from CUDA IPC), which
  // only that GPU's backends may touch.
  int device = -1;
};

// Shape and dtype of a tensor the engine will produce.
struct TensorSpec {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::size_t byte_size = 0;
};

// Formats a shape as "(2, 4, 37, 64)" for messages.
std::string ShapeToString(const std::vector<int64_t>& shape);

}  // namespace an1
