// DeviceId: where a request runs and where tensor memory lives — the host CPU or one CUDA device.
// A value type, compared and hashed as such; ToString() gives the "cpu" / "cuda:N" spelling used
// in responses, logs and metric labels, and nothing compares those strings.
#pragma once

#include <compare>
#include <string>

namespace an1 {

struct DeviceId {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int index = 0;  // the CUDA device ordinal; 0 for the CPU

  static constexpr DeviceId Cpu() { return {Kind::kCpu, 0}; }
  static constexpr DeviceId Cuda(int index) { return {Kind::kCuda, index}; }
  constexpr bool is_cuda() const { return kind == Kind::kCuda; }
  // "cpu" or "cuda:N".
  std::string ToString() const {
    return is_cuda() ? "cuda:" + std::to_string(index) : std::string("cpu");
  }
  friend constexpr auto operator<=>(const DeviceId&, const DeviceId&) = default;
};

}  // namespace an1
