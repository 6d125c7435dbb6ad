// The error type of the kernels layer (which depends on CUDA only, not on the engine).
//
// The engine maps kinds to its status codes: kOutOfMemory -> RESOURCE_EXHAUSTED,
// kUnsupported -> UNIMPLEMENTED, kDeviceFault -> UNAVAILABLE (and the device is taken out of
// service), kInternal -> INTERNAL.
#pragma once

#include <string>
#include <utility>

namespace an1::kernels {

struct KernelStatus {
  enum class Kind { kOk, kOutOfMemory, kUnsupported, kDeviceFault, kInternal };
  Kind kind = Kind::kOk;
  std::string message;

  bool ok() const { return kind == Kind::kOk; }
  static KernelStatus Ok() { return {}; }
  static KernelStatus Error(Kind kind, std::string message) { return {kind, std::move(message)}; }
};

}  // namespace an1::kernels
