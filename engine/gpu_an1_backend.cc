#include "engine/gpu_an1_backend.h"

#include "engine/gpu_matmul.h"
#include "engine/gpu_staging.h"

namespace an1 {

kernels::attention::AttentionParams ToAttentionParams(const ValidatedAttention& problem,
                                                      bool causal) {
  const AttentionDims& d = problem.dims;
  kernels::attention::AttentionParams params;
  params.dtype = ToElementType(problem.dtype);
  params.batch = d.batch;
  params.heads = d.heads;
  params.kv_heads = d.kv_heads;
  params.q_len = d.q_len;
  params.kv_len = d.kv_len;
  params.head_dim = d.head_dim;
  params.causal = causal;
  params.scale = problem.scale;
  return params;
}

std::string GpuAn1Backend::UnsupportedAttention(const ValidatedAttention& problem) const {
  // Causality does not change coverage; checked as causal.
  return kernels::attention::Supported(gpu_->properties(), ToAttentionParams(problem, true));
}

Status GpuAn1Backend::Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                                std::span<std::byte> output, const ExecutionContext& context,
                                ExecutionTimes* times) {
  kernels::attention::AttentionParams params = ToAttentionParams(problem, inputs.causal);
  // Coverage, kernel, split and workspace, worked out once for this request.
  const kernels::attention::LaunchPlan plan = kernels::attention::Plan(gpu_->properties(), params);
  if (plan.kernel == kernels::attention::AttentionKernel::kAuto) {
    return UnimplementedError(plan.unsupported);
  }
  if (times != nullptr) times->kernel = plan.label;
  const std::size_t workspace_bytes = plan.workspace_bytes;
  auto fused = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
    params.q = buf.inputs[0];
    params.k = buf.inputs[1];
    params.v = buf.inputs[2];
    params.o = buf.output;
    params.lse = static_cast<float*>(buf.extra_output);  // null unless the LSE was asked for
    return gpu_->Check(
        kernels::attention::Run(plan, params, buf.scratch, workspace_bytes, slot.stream));
  };
  return RunStaged(*gpu_, context, {&inputs.q, &inputs.k, &inputs.v}, workspace_bytes, output,
                   fused, times, std::as_writable_bytes(inputs.lse));
}

Status GpuAn1Backend::Matmul(const ValidatedMatmul& problem, const TensorView& a,
                             const TensorView& b, std::span<std::byte> output,
                             const ExecutionContext& context, ExecutionTimes* times) {
  return RunGpuMatmul(*gpu_, kernels::AlgoPolicy::kTunedFastest, problem, a, b, output, context,
                      times);
}

}  // namespace an1
