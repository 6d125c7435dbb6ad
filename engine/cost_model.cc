#include "engine/cost_model.h"

#include <algorithm>

namespace an1 {

void CostModel::Record(BackendKind backend, OpKind op, double work, double seconds) {
  if (work < kMinWork || seconds <= 0) return;
  const double observed = seconds / work;
  std::lock_guard lock(mutex_);
  double& kept = seconds_per_flop_[static_cast<int>(backend)][static_cast<int>(op)];
  kept = kept == 0 ? observed : std::min(kept * 1.01, observed);
}

std::optional<double> CostModel::Estimate(BackendKind backend, OpKind op, double work) const {
  if (work <= 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  const double kept = seconds_per_flop_[static_cast<int>(backend)][static_cast<int>(op)];
  if (kept == 0) return std::nullopt;
  return kept * work;
}

}  // namespace an1
