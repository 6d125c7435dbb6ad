#include "engine/gpu_baseline_backend.h"

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
    // B * Hkv. Row-major S = Q K^T is column-major S^T = K Q^T: A = K (transposed), B = Q.
    kernels::GemmProblem qk;
    qk.transpose_a = true;
    qk.m = d.kv_len;
    qk.n = group * d.q_len;
    qk.k = d.head_dim;
    qk.lda = d.head_dim;
    qk.ldb = d.head_dim;
    qk.ldc = d.kv_len;
    qk.stride_a = d.kv_len * d.head_dim;
    qk.stride_b = group * d.q_len * d.head_dim;
    qk.stride_c = group * d.q_len * d.kv_len;
    qk.batch = static_cast<int32_t>(d.batch * d.kv_heads);
    qk.ab_type = type;
    qk.c_type = kernels::ElementType::kF32;
    AN1_RETURN_IF_ERROR(gpu_->Check(gpu_->gemm().Run(qk, buf.inputs[1], buf.inputs[0], scores,
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

    // Row-major O = P V is column-major O^T = V^T P^T: A = V, B = P, both as stored.
    kernels::GemmProblem pv;
    pv.m = d.head_dim;
    pv.n = group * d.q_len;
    pv.k = d.kv_len;
    pv.lda = d.head_dim;
    pv.ldb = d.kv_len;
    pv.ldc = d.head_dim;
    pv.stride_a = d.kv_len * d.head_dim;
    pv.stride_b = group * d.q_len * d.kv_len;
    pv.stride_c = group * d.q_len * d.head_dim;
    pv.batch = qk.batch;
    pv.ab_type = type;
    pv.c_type = type;
    return gpu_->Check(gpu_->gemm().Run(pv, buf.inputs[2], probs, buf.output,
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
