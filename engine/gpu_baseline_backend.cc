#include "engine/gpu_baseline_backend.h"

#include "engine/baseline_gemms.h"
#include "engine/gpu_matmul.h"
#include "engine/gpu_staging.h"
#include "kernels/masked_softmax.h"

namespace an1 {

Status GpuBaselineBackend::Attention(const ValidatedAttention& problem,
                                     const AttentionInputs& inputs, std::span<std::byte> output,
                                     const ExecutionContext& context, ExecutionTimes* times) {
  if (times != nullptr) times->kernel = "baseline.gpu.unfused";
  const AttentionDims& d = problem.dims;
  const int64_t group = d.heads / d.kv_heads;
  const std::size_t elem = DTypeSize(problem.dtype);
  uint64_t score_elements = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(d.batch * d.heads * d.q_len),
                             static_cast<uint64_t>(d.kv_len), &score_elements) ||
      score_elements > (uint64_t{1} << 40)) {
    return ResourceExhaustedError("the baseline's score matrix would not fit in GPU memory");
  }
  if (d.batch * d.kv_heads > INT32_MAX) {
    return UnimplementedError("more than 2^31 - 1 (batch x kv_heads) matrices in one call");
  }
  const std::size_t scores_bytes = AlignDeviceBytes(score_elements * 4);
  const std::size_t probs_bytes = score_elements * elem;
  const kernels::ElementType type = ToElementType(problem.dtype);

  auto compute = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
    auto* scores = static_cast<float*>(buf.scratch);
    void* probs = static_cast<std::byte*>(buf.scratch) + scores_bytes;
    // Q is viewed per k/v head as (group * Sq) x D rows, so GQA is a plain strided batch over
    // B * Hkv; K and V are Sk x D per k/v head.
    const BaselineGemms gemms =
        MakeBaselineGemms(group * d.q_len, d.kv_len, d.head_dim, d.head_dim, d.kv_len * d.head_dim,
                          static_cast<int32_t>(d.batch * d.kv_heads), type);
    AN1_RETURN_IF_ERROR(gpu_->Check(gpu_->gemm().Run(gemms.qk, buf.inputs[1], buf.inputs[0], scores,
                                                     kernels::AlgoPolicy::kFirstHeuristic,
                                                     slot.workspace, slot.stream)));

    kernels::MaskedSoftmaxParams softmax;
    softmax.scores = scores;
    softmax.probs = probs;
    softmax.probs_type = type;
    softmax.rows = d.batch * d.heads * d.q_len;
    softmax.cols = d.kv_len;
    softmax.q_len = d.q_len;
    softmax.causal = inputs.causal;
    softmax.scale = problem.scale;
    softmax.lse = static_cast<float*>(buf.extra_output);  // null unless the LSE was asked for
    AN1_RETURN_IF_ERROR(gpu_->Check(kernels::LaunchMaskedSoftmax(softmax, slot.stream)));

    return gpu_->Check(gpu_->gemm().Run(gemms.pv, buf.inputs[2], probs, buf.output,
                                        kernels::AlgoPolicy::kFirstHeuristic, slot.workspace,
                                        slot.stream));
  };
  return RunStaged(*gpu_, context, {&inputs.q, &inputs.k, &inputs.v}, scores_bytes + probs_bytes,
                   output, compute, times, std::as_writable_bytes(inputs.lse));
}

Status GpuBaselineBackend::Matmul(const ValidatedMatmul& problem, const TensorView& a,
                                  const TensorView& b, std::span<std::byte> output,
                                  const ExecutionContext& context, ExecutionTimes* times) {
  return RunGpuMatmul(*gpu_, kernels::AlgoPolicy::kFirstHeuristic, problem, a, b, output, context,
                      times);
}

}  // namespace an1
