// The accelerated an1 backend on a GPU (CUDA builds only): attention through our kernel family
// (kernels/attention/attention.h: the dispatcher picks the kernel for the problem and this GPU),
// matmul through cuBLASLt with the fastest of its top algorithms timed once per shape.
//
// Thread-safety: as Backend; each executor passes its own slot.
#pragma once

#include "engine/backend.h"
#include "engine/gpu_context.h"
#include "kernels/attention/attention.h"

namespace an1 {

class GpuAn1Backend final : public Backend {
 public:
  explicit GpuAn1Backend(GpuContext* gpu) : gpu_(gpu) {}

  // Empty when a kernel of the family covers the problem on this GPU; otherwise why not.
  std::string UnsupportedAttention(const ValidatedAttention& problem) const override;
  Status Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                   std::span<std::byte> output, const ExecutionContext& context,
                   ExecutionTimes* times) override;
  Status Matmul(const ValidatedMatmul& problem, const TensorView& a, const TensorView& b,
                std::span<std::byte> output, const ExecutionContext& context,
                ExecutionTimes* times) override;
  // Paged attention through the decode kernel's paged source (gpu_paged_attention.cc).
  std::string UnsupportedPagedAttention(const ValidatedPagedAttention& problem) const override;
  Status PagedAttention(const ValidatedPagedAttention& problem,
                        const std::vector<PagedSequence>& sequences,
                        const PagedAttentionInputs& inputs, std::span<std::byte> output,
                        const ExecutionContext& context, ExecutionTimes* times) override;

 private:
  GpuContext* gpu_;
};

// The kernel family's parameters for a validated problem (pointers left null).
kernels::attention::AttentionParams ToAttentionParams(const ValidatedAttention& problem,
                                                      bool causal);

}  // namespace an1
