#include "engine/tensor_checks.h"

#include <string>

namespace an1 {
namespace {

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

// Elements and bytes of a shape, computed without overflow; every dimension must be >= 1.
StatusOr<std::size_t> ByteSizeOf(const char* name, DType dtype, const std::vector<int64_t>& shape) {
  uint64_t elements = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 1) {
      return InvalidArgumentError(std::string(name) + ".shape[" + std::to_string(i) + "] is " +
                                  Str(shape[i]) + "; every dimension must be at least 1");
    }
    if (__builtin_mul_overflow(elements, static_cast<uint64_t>(shape[i]), &elements)) {
      return InvalidArgumentError(std::string(name) + " shape " + ShapeToString(shape) +
                                  " has more elements than can be addressed");
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<uint64_t>(DTypeSize(dtype)), &bytes) ||
      bytes > SIZE_MAX) {
    return InvalidArgumentError(std::string(name) + " shape " + ShapeToString(shape) +
                                " has more bytes than can be addressed");
  }
  return static_cast<std::size_t>(bytes);
}

Status CheckWithinLimit(const char* name, std::size_t bytes, const Limits& limits) {
  if (bytes > limits.max_tensor_bytes) {
    return ResourceExhaustedError(std::string(name) + " needs " + std::to_string(bytes) +
                                  " bytes, above this server's limit of " +
                                  std::to_string(limits.max_tensor_bytes) + " bytes per tensor");
  }
  return OkStatus();
}

// Checks that the data holds exactly the bytes its dtype and shape call for, and the size limit.
Status CheckTensor(const char* name, const TensorView& t, const Limits& limits) {
  StatusOr<std::size_t> bytes = ByteSizeOf(name, t.dtype, t.shape);
  if (!bytes.ok()) return bytes.status();
  if (t.data.size() != *bytes) {
    return InvalidArgumentError(std::string(name) + " has " + std::to_string(t.data.size()) +
                                " bytes of data, but " + std::string(DTypeName(t.dtype)) +
                                " shape " + ShapeToString(t.shape) + " needs " +
                                std::to_string(*bytes));
  }
  return CheckWithinLimit(name, *bytes, limits);
}

Status CheckRank(const char* name, const TensorView& t, std::size_t rank, const char* layout) {
  if (t.shape.size() != rank) {
    return InvalidArgumentError(std::string(name) + " must have rank " + std::to_string(rank) +
                                " " + layout + ", got shape " + ShapeToString(t.shape));
  }
  return OkStatus();
}

Status CheckSameDType(const char* name, const TensorView& t, const char* ref_name, DType ref) {
  if (t.dtype != ref) {
    return InvalidArgumentError(std::string(name) + " is " + std::string(DTypeName(t.dtype)) +
                                " but " + ref_name + " is " + std::string(DTypeName(ref)) +
                                "; all operands must share one dtype");
  }
  return OkStatus();
}

Status CheckFloatDType(const char* name, const TensorView& t) {
  if (!IsFloatDType(t.dtype)) {
    return InvalidArgumentError(std::string(name) + " is " + std::string(DTypeName(t.dtype)) +
                                "; data tensors must be fp16, bf16 or fp32");
  }
  return OkStatus();
}

Status CheckDimEqual(const std::string& what, int64_t got, int64_t want) {
  if (got != want) {
    return InvalidArgumentError(what + " is " + Str(got) + " but must equal " + Str(want));
  }
  return OkStatus();
}

}  // namespace an1
