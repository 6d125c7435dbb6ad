// NumPy broadcasting of two operands' batch dimensions (matmul's leading dimensions), written
// once for validation and every backend.
//
// Shapes are aligned at their last dimension; a dimension of 1 stretches to the other's size;
// equal sizes match; anything else does not broadcast. Pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace an1 {

struct BatchBroadcast {
  std::vector<int64_t> shape;  // the result's batch dimensions
  std::vector<int64_t> a, b;   // the operands' batch dimensions, left-padded with 1 to its rank
  int64_t count = 1;           // product of `shape`

  // The flat batch indices of a and of b that flat result batch `index` reads.
  void OperandIndices(int64_t index, int64_t* a_index, int64_t* b_index) const;
  // Whether a (b) moves along the last batch dimension; false: it broadcasts there (stride 0).
  bool AStepsAlongLast() const { return !a.empty() && a.back() != 1; }
  bool BStepsAlongLast() const { return !b.empty() && b.back() != 1; }
};

// The broadcast of batch shapes `a` and `b`; nullopt when they do not broadcast. `count` is the
// product of the result's dimensions (the caller bounds it, e.g. by the output size).
std::optional<BatchBroadcast> BroadcastBatch(const std::vector<int64_t>& a,
                                             const std::vector<int64_t>& b);

}  // namespace an1
