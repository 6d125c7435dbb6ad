// CpuBackend::PagedAttention: the CPU reference of paged, ragged attention (backend.h). The
// append runs first, in full; then each (row, head) reads only the keys it sees, through the page
// table, so cache slots beyond a sequence's kv_len are never touched.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/cpu_backend.h"
#include "engine/cpu_parallel.h"
#include "engine/paged_append.h"

namespace an1 {
namespace {

constexpr int64_t kRowsPerTask = 16;  // query rows one task computes, for one head

// The keys [first, last] query position `i` of a sequence of `kv_len` keys sees; empty when
// first > last.
void VisibleRange(const PagedAttentionInputs& in, int64_t i, int64_t kv_len, int64_t* first,
                  int64_t* last) {
  *first = in.window_left < 0 ? 0 : std::max<int64_t>(0, i - in.window_left);
  *last = in.causal ? i : kv_len - 1;
  if (in.window_right >= 0) *last = std::min<int64_t>(*last, i + in.window_right);
  *last = std::min(*last, kv_len - 1);
}

}  // namespace

std::string CpuBackend::UnsupportedPagedAttention(
    const ValidatedPagedAttention& /*problem*/) const {
  return "";
}

Status CpuBackend::PagedAttention(const ValidatedPagedAttention& problem,
                                  const std::vector<PagedSequence>& sequences,
                                  const PagedAttentionInputs& in, std::span<std::byte> output,
                                  const ExecutionContext& context, ExecutionTimes* times) {
  if (times != nullptr) times->kernel = CpuBackend::kKernelLabel;
  bool device = context.output_device >= 0;
  for (const TensorView* t : {&in.q, &in.k_cache, &in.v_cache}) device = device || t->device >= 0;
  if (in.k_new) device = device || in.k_new->device >= 0 || in.v_new->device >= 0;
  if (device) return UnimplementedError("tensors in GPU memory need a GPU backend");
  if (problem.append) AppendOnHost(problem, sequences, in);

  const PagedAttentionDims& d = problem.dims;
  std::vector<int64_t> sequence_of_row(static_cast<std::size_t>(d.total_q));
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const PagedSequence& s = sequences[b];
    std::fill_n(sequence_of_row.begin() + s.q_start, s.q_len, static_cast<int64_t>(b));
  }
  const int64_t group = d.heads / d.kv_heads;  // query heads sharing one k/v head
  const int64_t row_blocks = (d.total_q + kRowsPerTask - 1) / kRowsPerTask;
  const std::size_t elem = DTypeSize(problem.dtype);
  const std::byte* k_cache = in.k_cache.data.data();  // after the append
  const std::byte* v_cache = in.v_cache.data.data();

  return StoppableParallelFor(pool_, row_blocks * d.heads, context, [&](int64_t task) {
    const int64_t h = task % d.heads, block = task / d.heads;
    const int64_t kv_head = h / group;
    std::vector<float> q_row(d.head_dim), row(d.head_dim), acc(d.head_dim), scores;
    const int64_t row_end = std::min(d.total_q, (block + 1) * kRowsPerTask);
    for (int64_t t = block * kRowsPerTask; t < row_end; ++t) {
      const int64_t b = sequence_of_row[static_cast<std::size_t>(t)];
      const PagedSequence& s = sequences[static_cast<std::size_t>(b)];
      const int64_t i = s.kv_len - s.q_len + (t - s.q_start);  // absolute position
      const std::size_t row_offset = static_cast<std::size_t>((t * d.heads + h) * d.head_dim);
      ConvertToFloat(problem.dtype, in.q.data.data() + row_offset * elem, d.head_dim, q_row.data());
      int64_t first = 0, last = -1;
      VisibleRange(in, i, s.kv_len, &first, &last);
      std::fill(acc.begin(), acc.end(), 0.0f);
      float lse = -std::numeric_limits<float>::infinity();  // of a row that sees no key
      if (first <= last) {                                  // a row that sees none outputs zeros
        const auto slot = [&](int64_t j) {                  // element offset of key j, this head
          return static_cast<std::size_t>(PagedCacheOffset(problem, in.page_table, b, j) +
                                          kv_head * d.head_dim) *
                 elem;
        };
        scores.resize(static_cast<std::size_t>(last - first + 1));
        float max_score = -std::numeric_limits<float>::infinity();
        for (int64_t j = first; j <= last; ++j) {
          ConvertToFloat(problem.dtype, k_cache + slot(j), d.head_dim, row.data());
          float dot = 0.0f;
          for (int64_t x = 0; x < d.head_dim; ++x) dot += q_row[x] * row[x];
          float score = dot * problem.scale;
          if (in.softcap > 0) score = in.softcap * std::tanh(score / in.softcap);
          scores[static_cast<std::size_t>(j - first)] = score;
          max_score = std::max(max_score, score);
        }
        float sum = 0.0f;
        for (int64_t j = first; j <= last; ++j) {
          const float p = std::exp(scores[static_cast<std::size_t>(j - first)] - max_score);
          sum += p;
          ConvertToFloat(problem.dtype, v_cache + slot(j), d.head_dim, row.data());
          for (int64_t x = 0; x < d.head_dim; ++x) acc[x] += p * row[x];
        }
        for (float& a : acc) a /= sum;
        lse = max_score + std::log(sum);  // ln(sum_j exp(s_j)), s_j after scale and softcap
      }
      if (!in.lse.empty()) in.lse[static_cast<std::size_t>(t * d.heads + h)] = lse;
      ConvertFromFloat(problem.dtype, acc.data(), d.head_dim, output.data() + row_offset * elem);
    }
  });
}

}  // namespace an1
