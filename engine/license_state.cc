#include "engine/license_state.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

namespace an1 {

LicenseState::LicenseState(const LicenseOptions& options,
                           const std::vector<kernels::GpuDevice>& gpus)
    : clock_(options.clock), clock_state_path_(options.clock_state_path) {
  if (!clock_state_path_.empty()) {
    std::ifstream in(clock_state_path_);
    int64_t stored = 0;
    if (in >> stored && stored > 0) high_water_ = persisted_ = stored;
  }
  if (!options.load_error.empty()) {
    startup_error_ = options.load_error;
    return;
  }
  if (options.token.empty()) {
    startup_error_ = "no license key configured (set AN1_LICENSE_KEY or --license-file)";
    return;
  }
  if (options.trusted_keys.empty()) {
    startup_error_ =
        "this build trusts no license signing keys (AN1_LICENSE_PUBLIC_KEYS was "
        "empty at build time)";
    return;
  }
  StatusOr<license::LicenseClaims> claims =
      license::VerifyToken(options.token, options.trusted_keys);
  if (!claims.ok()) {
    startup_error_ = claims.status().message();
    return;
  }
  claims_ = std::move(claims).value();
  if (!claims_->HasFeature("an1")) {
    startup_error_ = "the license does not include the an1 feature";
    return;
  }
  for (const kernels::GpuDevice& gpu : gpus) {
    const auto& bound = claims_->gpu_uuids;
    if (bound.empty() || std::find(bound.begin(), bound.end(), gpu.uuid) != bound.end()) {
      if (claims_->max_gpus == 0 || static_cast<int>(licensed_gpus_.size()) < claims_->max_gpus) {
        licensed_gpus_.push_back(gpu.index);
      }
    }
  }
  if (!gpus.empty() && licensed_gpus_.empty()) {
    startup_error_ = "the license is bound to other GPUs than the ones on this host";
  }
}

int64_t LicenseState::Now() const {
  if (clock_) return clock_();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Clocks are stepped back a little by time synchronisation; more than this is a rollback.
constexpr int64_t kClockSlackSeconds = 300;

std::string LicenseState::CheckClock(int64_t now) const {
  int64_t mark = high_water_.load();
  while (now > mark && !high_water_.compare_exchange_weak(mark, now)) {
  }
  if (now + kClockSlackSeconds < mark) {
    return "the clock reads " + std::to_string(now) + ", more than " +
           std::to_string(kClockSlackSeconds) + " s before " + std::to_string(mark) +
           ", a time it read earlier" +
           (clock_state_path_.empty() ? "" : " (" + clock_state_path_ + ")") +
           ": the clock was set back, so the license is not trusted";
  }
  int64_t persisted = persisted_.load();
  if (!clock_state_path_.empty() && now >= persisted + 60 &&
      persisted_.compare_exchange_strong(persisted, now)) {
    // Written beside, then renamed over: a crash leaves the old mark or the new, never half.
    const std::string temporary = clock_state_path_ + ".tmp";
    std::ofstream out(temporary, std::ios::trunc);
    out << now << "\n";
    out.close();
    if (!out || std::rename(temporary.c_str(), clock_state_path_.c_str()) != 0) {
      persisted_ = persisted;  // try again at the next check
    }
  }
  return "";
}

LicenseStatus LicenseState::Current() const {
  LicenseStatus status;
  status.claims = claims_;
  if (!startup_error_.empty()) {
    status.reason = startup_error_;
    return status;
  }
  const int64_t now = Now();
  if (std::string rolled_back = CheckClock(now); !rolled_back.empty()) {
    status.reason = std::move(rolled_back);
    return status;
  }
  Status in_time = license::CheckTimeValidity(*claims_, now);
  status.valid = in_time.ok();
  status.reason = in_time.message();
  return status;
}

}  // namespace an1
