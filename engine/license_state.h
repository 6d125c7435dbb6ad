// The engine's view of its license: verified once at startup, checked against the clock at
// every use. Thread-safe after construction (all methods are const).
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "engine/license/token.h"
#include "engine/options.h"
#include "kernels/gpu_devices.h"

namespace an1 {

struct LicenseStatus {
  bool valid = false;
  std::string reason;                            // why not valid; empty when valid
  std::optional<license::LicenseClaims> claims;  // present when the signature verified
};

class LicenseState {
 public:
  // Verifies options.token against options.trusted_keys, and the GPU binding against `gpus`.
  LicenseState(const LicenseOptions& options, const std::vector<kernels::GpuDevice>& gpus);

  // Valid now: verified, within its validity period, includes `an1`, bound to a visible GPU.
  LicenseStatus Current() const;
  // Indices of the visible GPUs the license lets serve an1: those in its GPU binding (all when
  // unbound), at most max_gpus of them, in discovery order.
  const std::vector<int>& licensed_gpus() const { return licensed_gpus_; }

 private:
  int64_t Now() const;
  // Raises the high-water mark to `now` (persisting it when it moved a minute or more) and
  // returns the mark: the time the license is checked at, so that setting the clock back cannot
  // make an expired license valid again, while a mark set too far ahead by a wrong clock costs
  // nothing unless it lies past the license's expiry.
  int64_t RaiseClockMark(int64_t now) const;

  std::function<int64_t()> clock_;
  std::string clock_state_path_;
  mutable std::atomic<int64_t> high_water_{0};  // the latest time read (Unix seconds)
  mutable std::atomic<int64_t> persisted_{0};   // the mark last written to clock_state_path_
  std::optional<license::LicenseClaims> claims_;
  std::string startup_error_;  // a reason that does not depend on the time
  std::vector<int> licensed_gpus_;
};

}  // namespace an1
