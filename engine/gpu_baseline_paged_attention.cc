// GpuBaselineBackend's paged attention (backend.h): the readable, unfused path, with the same
// semantics as the CPU baseline and the an1 paged kernel. The host turns the page table into row
// indices; on the GPU, per call: the append (rows of k_new, v_new scattered into their cache
// slots), q regrouped from (total_q, H, D) into per-sequence (H, q_len, D) blocks; then per
// sequence: its K and V gathered from the pages into dense (kv_len, Hkv, D) matrices, S = Q K^T by
// cuBLASLt in fp32, the masked (causal, window) and softcapped softmax, O = P V by cuBLASLt; at
// the end O (and the LSE) scattered back to token order. Everything is stream-ordered on the
// slot's stream, so the dense buffers are reused from one sequence to the next.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/baseline_gemms.h"
#include "engine/gpu_baseline_backend.h"
#include "engine/gpu_staging.h"
#include "engine/paged_append.h"
#include "kernels/gemm.h"
#include "kernels/masked_softmax.h"
#include "kernels/row_copy.h"

namespace an1 {
namespace {

// Row indices of one call (host memory, uploaded as int32 inputs).
struct PagedRowIndices {
  // Per sequence, from kv_offset[b]: the cache slot of each of its keys 0 .. kv_len - 1.
  std::vector<int32_t> kv_slot;
  std::vector<int64_t> kv_offset;
  // The cache slot each row of k_new / v_new goes to (with an append; total_q entries).
  std::vector<int32_t> append_slot;
  // Row (h, i) of sequence b's (H, q_len) block, at q_start * H + h * q_len + i: the q (and
  // output, LSE) row (q_start + i) * H + h it comes from.
  std::vector<int32_t> q_row;
};

PagedRowIndices MakeRowIndices(const ValidatedPagedAttention& problem,
                               const std::vector<PagedSequence>& sequences,
                               const PagedAttentionInputs& in) {
  const PagedAttentionDims& d = problem.dims;
  const int64_t slot_elements = d.kv_heads * d.head_dim;
  const auto slot_of = [&](int64_t b, int64_t position) {
    return static_cast<int32_t>(PagedCacheOffset(problem, in.page_table, b, position) /
                                slot_elements);
  };
  PagedRowIndices x;
  x.q_row.resize(static_cast<std::size_t>(d.total_q * d.heads));
  if (problem.append) x.append_slot.resize(static_cast<std::size_t>(d.total_q));
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const PagedSequence& s = sequences[b];
    const auto sb = static_cast<int64_t>(b);
    x.kv_offset.push_back(static_cast<int64_t>(x.kv_slot.size()));
    if (s.q_len == 0) continue;  // skipped: nothing reads its keys
    for (int64_t j = 0; j < s.kv_len; ++j) x.kv_slot.push_back(slot_of(sb, j));
    for (int64_t i = 0; i < s.q_len; ++i) {
      if (problem.append) {
        x.append_slot[static_cast<std::size_t>(s.q_start + i)] =
            slot_of(sb, s.kv_len - s.q_len + i);
      }
      for (int64_t h = 0; h < d.heads; ++h) {
        x.q_row[static_cast<std::size_t>(s.q_start * d.heads + h * s.q_len + i)] =
            static_cast<int32_t>((s.q_start + i) * d.heads + h);
      }
    }
  }
  return x;
}

TensorView Int32View(const std::vector<int32_t>& values) {
  return {DType::kInt32,
          {static_cast<int64_t>(values.size())},
          std::as_bytes(std::span<const int32_t>(values)),
          -1};
}

}  // namespace

std::string GpuBaselineBackend::UnsupportedPagedAttention(
    const ValidatedPagedAttention& problem) const {
  const PagedAttentionDims& d = problem.dims;
  // Row indices are int32 (kernels/row_copy.h).
  if (d.num_pages * d.page_size > INT32_MAX || d.total_q * d.heads > INT32_MAX) {
    return "the GPU baseline's paged attention takes at most 2^31 - 1 cache slots and 2^31 - 1 "
           "(row, head) pairs";
  }
  return "";
}

Status GpuBaselineBackend::PagedAttention(const ValidatedPagedAttention& problem,
                                          const std::vector<PagedSequence>& sequences,
                                          const PagedAttentionInputs& in,
                                          std::span<std::byte> output,
                                          const ExecutionContext& context, ExecutionTimes* times) {
  if (times != nullptr) times->kernel = "baseline.gpu.paged_unfused";
  const std::string unsupported = UnsupportedPagedAttention(problem);
  if (!unsupported.empty()) return UnimplementedError(unsupported);
  StatusOr<bool> on_gpu = AppendOnGpuOrHost(problem, sequences, in);  // host: appended now
  if (!on_gpu.ok()) return on_gpu.status();
  const bool device_append = *on_gpu;

  const PagedAttentionDims& d = problem.dims;
  const int64_t group = d.heads / d.kv_heads;
  const int64_t elem = static_cast<int64_t>(DTypeSize(problem.dtype));
  const int64_t slot_bytes = d.kv_heads * d.head_dim * elem;
  const PagedRowIndices rows = MakeRowIndices(problem, sequences, in);

  // Scratch: q and O regrouped (total_q * H rows each), the LSE regrouped, and buffers for the
  // largest sequence: dense K and V, fp32 scores, probabilities.
  int64_t max_kv = 0, max_scores = 0;
  for (const PagedSequence& s : sequences) {
    if (s.q_len == 0) continue;
    max_kv = std::max(max_kv, s.kv_len);
    max_scores = std::max(max_scores, d.heads * s.q_len * s.kv_len);
  }
  const std::size_t qo_bytes =
      AlignDeviceBytes(static_cast<std::size_t>(d.total_q * d.heads * d.head_dim * elem));
  const std::size_t lse_bytes = AlignDeviceBytes(static_cast<std::size_t>(d.total_q * d.heads) * 4);
  const std::size_t kv_bytes = AlignDeviceBytes(static_cast<std::size_t>(max_kv * slot_bytes));
  const std::size_t scores_bytes = AlignDeviceBytes(static_cast<std::size_t>(max_scores) * 4);
  const std::size_t probs_bytes = AlignDeviceBytes(static_cast<std::size_t>(max_scores * elem));
  const kernels::ElementType type = ToElementType(problem.dtype);

  const TensorView kv_slot = Int32View(rows.kv_slot);
  const TensorView append_slot = Int32View(rows.append_slot);
  const TensorView q_row = Int32View(rows.q_row);
  const TensorView none{};
  const TensorView& k_new = device_append ? *in.k_new : none;  // uploaded only for a GPU append
  const TensorView& v_new = device_append ? *in.v_new : none;

  auto compute = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
    const void* q = buf.inputs[0];
    void* k_cache = const_cast<void*>(buf.inputs[1]);  // the caller's writable region, or a copy
    void* v_cache = const_cast<void*>(buf.inputs[2]);
    const auto* kv_slot_d = static_cast<const int32_t*>(buf.inputs[3]);
    const auto* q_row_d = static_cast<const int32_t*>(buf.inputs[5]);
    auto* scratch = static_cast<std::byte*>(buf.scratch);
    std::byte* q_grouped = scratch;
    std::byte* o_grouped = q_grouped + qo_bytes;
    auto* lse_grouped = reinterpret_cast<float*>(o_grouped + qo_bytes);
    std::byte* k_dense = reinterpret_cast<std::byte*>(lse_grouped) + lse_bytes;
    std::byte* v_dense = k_dense + kv_bytes;
    auto* scores = reinterpret_cast<float*>(v_dense + kv_bytes);
    std::byte* probs = reinterpret_cast<std::byte*>(scores) + scores_bytes;
    auto* lse = static_cast<float*>(buf.extra_output);  // null unless the LSE was asked for
    const auto run = [&](const kernels::KernelStatus& s) { return gpu_->Check(s); };

    if (device_append) {
      const auto* append_slot_d = static_cast<const int32_t*>(buf.inputs[4]);
      for (auto [src, cache] : {std::pair{buf.inputs[6], k_cache}, {buf.inputs[7], v_cache}}) {
        AN1_RETURN_IF_ERROR(run(kernels::LaunchScatterRows(
            {src, cache, append_slot_d, d.total_q, slot_bytes}, slot.stream)));
      }
    }
    const int64_t head_row_bytes = d.head_dim * elem;
    AN1_RETURN_IF_ERROR(run(kernels::LaunchGatherRows(
        {q, q_grouped, q_row_d, d.total_q * d.heads, head_row_bytes}, slot.stream)));

    for (std::size_t b = 0; b < sequences.size(); ++b) {
      const PagedSequence& s = sequences[b];
      if (s.q_len == 0) continue;
      const int32_t* keys = kv_slot_d + rows.kv_offset[b];
      AN1_RETURN_IF_ERROR(run(
          kernels::LaunchGatherRows({k_cache, k_dense, keys, s.kv_len, slot_bytes}, slot.stream)));
      AN1_RETURN_IF_ERROR(run(
          kernels::LaunchGatherRows({v_cache, v_dense, keys, s.kv_len, slot_bytes}, slot.stream)));
      const int64_t block = s.q_start * d.heads;  // the sequence's first grouped row
      // Per KV head g: its keys are rows of stride Hkv * D from element g * D of the dense K
      // and V; its query heads g * group ... are group * q_len consecutive grouped rows.
      const BaselineGemms gemms =
          MakeBaselineGemms(group * s.q_len, s.kv_len, d.head_dim, d.kv_heads * d.head_dim,
                            d.head_dim, static_cast<int32_t>(d.kv_heads), type);
      AN1_RETURN_IF_ERROR(
          run(gpu_->gemm().Run(gemms.qk, k_dense, q_grouped + block * head_row_bytes, scores,
                               kernels::AlgoPolicy::kFirstHeuristic, slot.workspace, slot.stream)));

      kernels::MaskedSoftmaxParams softmax;
      softmax.scores = scores;
      softmax.probs = probs;
      softmax.probs_type = type;
      softmax.rows = d.heads * s.q_len;
      softmax.cols = s.kv_len;
      softmax.q_len = s.q_len;
      softmax.causal = in.causal;
      softmax.window_left = in.window_left;
      softmax.window_right = in.window_right;
      softmax.scale = problem.scale;
      softmax.softcap = in.softcap;
      softmax.lse = lse != nullptr ? lse_grouped + block : nullptr;
      AN1_RETURN_IF_ERROR(run(kernels::LaunchMaskedSoftmax(softmax, slot.stream)));

      AN1_RETURN_IF_ERROR(
          run(gpu_->gemm().Run(gemms.pv, v_dense, probs, o_grouped + block * head_row_bytes,
                               kernels::AlgoPolicy::kFirstHeuristic, slot.workspace, slot.stream)));
    }
    // Skipped sequences have no rows, so every output row comes from some sequence's block.
    AN1_RETURN_IF_ERROR(run(kernels::LaunchScatterRows(
        {o_grouped, buf.output, q_row_d, d.total_q * d.heads, head_row_bytes}, slot.stream)));
    if (lse != nullptr) {
      AN1_RETURN_IF_ERROR(run(kernels::LaunchScatterRows(
          {lse_grouped, lse, q_row_d, d.total_q * d.heads, 4}, slot.stream)));
    }
    return OkStatus();
  };
  return RunStaged(
      *gpu_, context,
      {&in.q, &in.k_cache, &in.v_cache, &kv_slot, &append_slot, &q_row, &k_new, &v_new},
      2 * qo_bytes + lse_bytes + 2 * kv_bytes + scores_bytes + probs_bytes, output, compute, times,
      std::as_writable_bytes(in.lse));
}

}  // namespace an1
