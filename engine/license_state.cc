#include "engine/license_state.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace an1 {

LicenseState::LicenseState(const LicenseOptions& options,
                           const std::vector<kernels::GpuDevice>& gpus)
    : clock_(options.clock), clock_state_path_(options.clock_state_path) {
  if (!clock_state_path_.empty()) {
    std::ifstream in(clock_state_path_);
    int64_t stored = 0;
    if (in >> stored && stored > 0) {
      high_water_ = persisted_ = stored;
    } else if (in.is_open()) {
      spdlog::warn("the license clock mark in {} is unreadable; starting from the clock",
                   clock_state_path_);
    }
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

int64_t LicenseState::RaiseClockMark(int64_t now) const {
  int64_t mark = high_water_.load();
  while (now > mark && !high_water_.compare_exchange_weak(mark, now)) {
  }
  int64_t persisted = persisted_.load();
  if (!clock_state_path_.empty() && now >= persisted + 60 &&
      persisted_.compare_exchange_strong(persisted, now)) {
    // Written beside (a name of this process's), flushed to disk, then renamed over: a crash
    // leaves the old mark or the new one. A failure is logged and retried a minute later.
    const std::string temporary = clock_state_path_ + ".tmp." + std::to_string(getpid());
    bool written = false;
    if (std::FILE* out = std::fopen(temporary.c_str(), "w")) {
      written = std::fprintf(out, "%lld\n", static_cast<long long>(now)) > 0 &&
                std::fflush(out) == 0 && fsync(fileno(out)) == 0;
      written = std::fclose(out) == 0 && written;
    }
    if (!written || std::rename(temporary.c_str(), clock_state_path_.c_str()) != 0) {
      std::remove(temporary.c_str());
      spdlog::warn("cannot keep the license clock mark in {}: {}", clock_state_path_,
                   std::strerror(errno));
    }
  }
  return std::max(now, high_water_.load());
}

LicenseStatus LicenseState::Current() const {
  LicenseStatus status;
  status.claims = claims_;
  if (!startup_error_.empty()) {
    status.reason = startup_error_;
    return status;
  }
  const int64_t now = Now();
  const int64_t at = RaiseClockMark(now);
  Status in_time = license::CheckTimeValidity(*claims_, at);
  status.valid = in_time.ok();
  status.reason = in_time.message();
  if (!status.valid && at > now) {
    status.reason += " (checked at " + std::to_string(at) +
                     ", the latest time the clock has read; it now reads " + std::to_string(now) +
                     (clock_state_path_.empty() ? "" : ", mark kept in " + clock_state_path_) + ")";
  }
  return status;
}

}  // namespace an1
