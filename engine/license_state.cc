#include "engine/license_state.h"

#include <algorithm>
#include <chrono>

namespace an1 {

LicenseState::LicenseState(const LicenseOptions& options,
                           const std::vector<kernels::GpuDevice>& gpus)
    : clock_(options.clock) {
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

LicenseStatus LicenseState::Current() const {
  LicenseStatus status;
  status.claims = claims_;
  if (!startup_error_.empty()) {
    status.reason = startup_error_;
    return status;
  }
  Status in_time = license::CheckTimeValidity(*claims_, Now());
  status.valid = in_time.ok();
  status.reason = in_time.message();
  return status;
}

}  // namespace an1
