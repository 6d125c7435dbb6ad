// The GPU baseline (CUDA builds only): the readable, unfused path every other GPU backend is
// measured against. Attention materialises the scores: cuBLASLt GEMM (S = Q K^T in fp32), a
// scaled, masked fp32 softmax kernel, cuBLASLt GEMM (O = P V); matmul is cuBLASLt with its first
// heuristic algorithm. Covers every dtype, head_dim and shape validation lets through. Paged
// attention (gpu_baseline_paged_attention.cc) gathers each sequence's pages into dense K and V
// and runs the same three steps per sequence.
//
// Thread-safety: as Backend; each executor passes its own slot.
#pragma once

#include "engine/backend.h"
#include "engine/gpu_context.h"

namespace an1 {

class GpuBaselineBackend final : public Backend {
 public:
  explicit GpuBaselineBackend(GpuContext* gpu) : gpu_(gpu) {}

  Status Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                   std::span<std::byte> output, const ExecutionContext& context,
                   ExecutionTimes* times) override;
  Status Matmul(const ValidatedMatmul& problem, const TensorView& a, const TensorView& b,
                std::span<std::byte> output, const ExecutionContext& context,
                ExecutionTimes* times) override;
  std::string UnsupportedPagedAttention(const ValidatedPagedAttention& problem) const override;
  Status PagedAttention(const ValidatedPagedAttention& problem,
                        const std::vector<PagedSequence>& sequences,
                        const PagedAttentionInputs& inputs, std::span<std::byte> output,
                        const ExecutionContext& context, ExecutionTimes* times) override;

 private:
  GpuContext* gpu_;
};

}  // namespace an1
