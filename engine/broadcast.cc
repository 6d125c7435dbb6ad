#include "engine/broadcast.h"

#include <algorithm>

namespace an1 {

void BatchBroadcast::OperandIndices(int64_t index, int64_t* a_index, int64_t* b_index) const {
  int64_t a_flat = 0, b_flat = 0, a_stride = 1, b_stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    const int64_t coord = index % shape[i];
    index /= shape[i];
    if (a[i] != 1) a_flat += coord * a_stride;
    if (b[i] != 1) b_flat += coord * b_stride;
    a_stride *= a[i];
    b_stride *= b[i];
  }
  *a_index = a_flat;
  *b_index = b_flat;
}

std::optional<BatchBroadcast> BroadcastBatch(const std::vector<int64_t>& a,
                                             const std::vector<int64_t>& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  BatchBroadcast out;
  out.a.assign(rank - a.size(), 1);
  out.a.insert(out.a.end(), a.begin(), a.end());
  out.b.assign(rank - b.size(), 1);
  out.b.insert(out.b.end(), b.begin(), b.end());
  for (std::size_t i = 0; i < rank; ++i) {
    const int64_t x = out.a[i], y = out.b[i];
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out.shape.push_back(std::max(x, y));
    out.count *= out.shape.back();
  }
  return out;
}

}  // namespace an1
