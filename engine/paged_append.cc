#include "engine/paged_append.h"

#include <cstring>

#include "engine/dtype.h"

namespace an1 {

void AppendOnHost(const ValidatedPagedAttention& problem,
                  const std::vector<PagedSequence>& sequences, const PagedAttentionInputs& in) {
  const PagedAttentionDims& d = problem.dims;
  const std::size_t row_bytes = static_cast<std::size_t>(d.kv_heads * d.head_dim) *
                                DTypeSize(problem.dtype);  // one slot: (Hkv, D)
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const PagedSequence& s = sequences[b];
    for (int64_t l = 0; l < s.q_len; ++l) {
      const int64_t position = s.kv_len - s.q_len + l;
      const std::size_t to = static_cast<std::size_t>(PagedCacheOffset(
                                 problem, in.page_table, static_cast<int64_t>(b), position)) *
                             DTypeSize(problem.dtype);
      const std::size_t from = static_cast<std::size_t>(s.q_start + l) * row_bytes;
      std::memcpy(in.k_cache_writable.data() + to, in.k_new->data.data() + from, row_bytes);
      std::memcpy(in.v_cache_writable.data() + to, in.v_new->data.data() + from, row_bytes);
      if (in.appended == nullptr) continue;
      if (!in.appended->empty() && in.appended->back().offset + in.appended->back().size == to) {
        in.appended->back().size += row_bytes;  // the next slot of the same page
      } else {
        in.appended->push_back({to, row_bytes});
      }
    }
  }
}

StatusOr<bool> AppendOnGpuOrHost(const ValidatedPagedAttention& problem,
                                 const std::vector<PagedSequence>& sequences,
                                 const PagedAttentionInputs& in) {
  const bool caches_on_device = in.k_cache.device >= 0;
  if ((in.v_cache.device >= 0) != caches_on_device) {
    return InvalidArgumentError(
        "k_cache and v_cache must both be in GPU memory or both in host memory");
  }
  if (!problem.append) return false;
  const bool new_on_device = in.k_new->device >= 0 || in.v_new->device >= 0;
  if (!caches_on_device && new_on_device) {
    return InvalidArgumentError(
        "k_new and v_new are in GPU memory but the caches are not: the append needs the caches "
        "in GPU memory too (CUDA IPC regions)");
  }
  if (!caches_on_device) {
    AppendOnHost(problem, sequences, in);
    return false;
  }
  if (in.k_cache_writable.empty() || in.v_cache_writable.empty()) {
    return InternalError("the caches in GPU memory are not writable");
  }
  return true;
}

}  // namespace an1
