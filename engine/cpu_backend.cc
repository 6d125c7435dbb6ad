#include "engine/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/cpu_parallel.h"
#include "kernels/attention/common/causal.h"

namespace an1 {
namespace {

constexpr int64_t kRowsPerTask = 16;             // query or output rows one task computes
constexpr std::size_t kConvertChunk = 1u << 16;  // elements converted per task

// Converts a whole tensor to float, in parallel chunks.
Status ToFloat(ThreadPool& pool, const TensorView& t, std::vector<float>& out) {
  const std::size_t count = t.data.size() / DTypeSize(t.dtype);
  out.resize(count);
  const int64_t chunks = static_cast<int64_t>((count + kConvertChunk - 1) / kConvertChunk);
  return pool.ParallelFor(chunks, [&](int64_t c) {
    const std::size_t begin = static_cast<std::size_t>(c) * kConvertChunk;
    const std::size_t n = std::min(kConvertChunk, count - begin);
    ConvertToFloat(t.dtype, t.data.data() + begin * DTypeSize(t.dtype), n, out.data() + begin);
  });
}

Status RefuseDeviceMemory(const ExecutionContext& context,
                          std::initializer_list<const TensorView*> inputs) {
  bool device = context.output_device >= 0;
  for (const TensorView* t : inputs) device = device || t->device >= 0;
  if (device) return UnimplementedError("tensors in GPU memory need a GPU backend");
  return OkStatus();
}

}  // namespace

CpuBackend::CpuBackend(int threads) : pool_(threads) {}

Status CpuBackend::Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                             std::span<std::byte> output, const ExecutionContext& context,
                             ExecutionTimes* times) {
  if (times != nullptr) times->kernel = CpuBackend::kKernelLabel;
  AN1_RETURN_IF_ERROR(RefuseDeviceMemory(context, {&inputs.q, &inputs.k, &inputs.v}));
  const AttentionDims& d = problem.dims;
  std::vector<float> k, v;
  AN1_RETURN_IF_ERROR(ToFloat(pool_, inputs.k, k));
  AN1_RETURN_IF_ERROR(ToFloat(pool_, inputs.v, v));

  const int64_t group = d.heads / d.kv_heads;  // query heads sharing one k/v head
  const int64_t row_blocks = (d.q_len + kRowsPerTask - 1) / kRowsPerTask;
  const std::size_t elem = DTypeSize(problem.dtype);

  return StoppableParallelFor(pool_, d.batch * d.heads * row_blocks, context, [&](int64_t task) {
    const int64_t block = task % row_blocks;
    const int64_t bh = task / row_blocks;  // b * heads + h
    const int64_t b = bh / d.heads, h = bh % d.heads;
    const int64_t kv_head = b * d.kv_heads + h / group;
    const float* k_head = k.data() + kv_head * d.kv_len * d.head_dim;
    const float* v_head = v.data() + kv_head * d.kv_len * d.head_dim;

    std::vector<float> q_row(d.head_dim), scores(d.kv_len), acc(d.head_dim);
    const int64_t row_end = std::min(d.q_len, (block + 1) * kRowsPerTask);
    for (int64_t i = block * kRowsPerTask; i < row_end; ++i) {
      const std::size_t row_offset = static_cast<std::size_t>((bh * d.q_len + i) * d.head_dim);
      ConvertToFloat(problem.dtype, inputs.q.data.data() + row_offset * elem, d.head_dim,
                     q_row.data());
      const int64_t visible =
          kernels::attention::VisibleKeys<int64_t>(i, d.q_len, d.kv_len, inputs.causal);
      std::fill(acc.begin(), acc.end(), 0.0f);
      float lse = -std::numeric_limits<float>::infinity();  // of a row that sees no key
      if (visible > 0) {                                    // a fully masked row outputs zeros
        float max_score = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < visible; ++j) {
          const float* key = k_head + j * d.head_dim;
          float dot = 0.0f;
          for (int64_t x = 0; x < d.head_dim; ++x) dot += q_row[x] * key[x];
          scores[j] = dot * problem.scale;
          max_score = std::max(max_score, scores[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < visible; ++j) {
          const float p = std::exp(scores[j] - max_score);
          sum += p;
          const float* value = v_head + j * d.head_dim;
          for (int64_t x = 0; x < d.head_dim; ++x) acc[x] += p * value[x];
        }
        for (float& a : acc) a /= sum;
        lse = max_score + std::log(sum);  // ln(sum_j exp(s_j)), s_j = q_i . k_j * scale
      }
      if (!inputs.lse.empty()) inputs.lse[static_cast<std::size_t>(bh * d.q_len + i)] = lse;
      ConvertFromFloat(problem.dtype, acc.data(), d.head_dim, output.data() + row_offset * elem);
    }
  });
}

Status CpuBackend::Matmul(const ValidatedMatmul& problem, const TensorView& a_in,
                          const TensorView& b_in, std::span<std::byte> output,
                          const ExecutionContext& context, ExecutionTimes* times) {
  if (times != nullptr) times->kernel = CpuBackend::kKernelLabel;
  AN1_RETURN_IF_ERROR(RefuseDeviceMemory(context, {&a_in, &b_in}));
  const MatmulDims& d = problem.dims;
  std::vector<float> a, b;
  AN1_RETURN_IF_ERROR(ToFloat(pool_, a_in, a));
  AN1_RETURN_IF_ERROR(ToFloat(pool_, b_in, b));

  const int64_t row_blocks = (d.m + kRowsPerTask - 1) / kRowsPerTask;
  const std::size_t elem = DTypeSize(problem.dtype);
  return StoppableParallelFor(pool_, d.batch.count * row_blocks, context, [&](int64_t task) {
    const int64_t batch = task / row_blocks, block = task % row_blocks;
    int64_t a_batch = 0, b_batch = 0;
    d.batch.OperandIndices(batch, &a_batch, &b_batch);
    const float* a_mat = a.data() + a_batch * d.m * d.k;
    const float* b_mat = b.data() + b_batch * d.k * d.n;

    std::vector<float> row(d.n);
    const int64_t row_end = std::min(d.m, (block + 1) * kRowsPerTask);
    for (int64_t i = block * kRowsPerTask; i < row_end; ++i) {
      std::fill(row.begin(), row.end(), 0.0f);
      for (int64_t kk = 0; kk < d.k; ++kk) {  // row += a[i, kk] * b[kk, :], unit-stride
        const float scale = a_mat[i * d.k + kk];
        const float* b_row = b_mat + kk * d.n;
        for (int64_t j = 0; j < d.n; ++j) row[j] += scale * b_row[j];
      }
      const std::size_t out_offset = static_cast<std::size_t>((batch * d.m + i) * d.n);
      ConvertFromFloat(problem.dtype, row.data(), d.n, output.data() + out_offset * elem);
    }
  });
}

}  // namespace an1
