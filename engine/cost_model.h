// The admission-time cost estimate of a device (docs/security.md, "Deadlines"): seconds per
// floating-point operation that each (backend, op) has shown on this device, to refuse at once a
// request that cannot finish before its deadline instead of letting it hold a worker until then.
//
// The rate kept is the fastest of the recent runs (decayed 1% slower per run, so a device that
// slowed down is learned): estimates are optimistic, so a refusal means the request could not
// finish even at the best speed seen. Small runs, dominated by fixed costs, do not lower it.
// Thread-safe.
#pragma once

#include <mutex>
#include <optional>

#include "engine/backend.h"
#include "engine/options.h"

namespace an1 {

class CostModel {
 public:
  // Runs of fewer FLOPs than this are ignored: their time is mostly fixed costs.
  static constexpr double kMinWork = 1e8;

  // A run of `work` FLOPs that computed for `seconds`.
  void Record(BackendKind backend, OpKind op, double work, double seconds);

  // The seconds `work` FLOPs would take at the fastest rate recorded; nullopt before any run
  // of that (backend, op), or for work <= 0 (unknown).
  std::optional<double> Estimate(BackendKind backend, OpKind op, double work) const;

 private:
  static constexpr int kBackends = 3, kOps = 3;
  mutable std::mutex mutex_;
  double seconds_per_flop_[kBackends][kOps] = {};  // 0: nothing recorded
};

}  // namespace an1
