#include "engine/gpu_matmul.h"

#include "engine/gpu_staging.h"

namespace an1 {

Status RunGpuMatmul(GpuContext& gpu, kernels::AlgoPolicy policy, const ValidatedMatmul& problem,
                    const TensorView& a, const TensorView& b, std::span<std::byte> output,
                    const ExecutionContext& context, ExecutionTimes* times) {
  if (times != nullptr) {
    times->kernel =
        policy == kernels::AlgoPolicy::kTunedFastest ? "cublaslt.tuned" : "cublaslt.heuristic";
  }
  const MatmulDims& d = problem.dims;
  const kernels::ElementType type = ToElementType(problem.dtype);
  const std::size_t elem = DTypeSize(problem.dtype);
  // The last batch dimension becomes one strided-batched call (stride 0 where it broadcasts);
  // the dimensions before it, if any, are a loop of such calls.
  const int64_t inner = d.batch.shape.empty() ? 1 : d.batch.shape.back();
  const int64_t outer = d.batch.count / inner;
  const bool a_steps = d.batch.AStepsAlongLast();
  const bool b_steps = d.batch.BStepsAlongLast();
  if (inner > INT32_MAX) {
    return UnimplementedError("more than 2^31 - 1 matrices in the last batch dimension");
  }

  auto compute = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
    // Row-major C = A B is column-major C^T = B^T A^T: the operands swap places.
    kernels::GemmProblem g;
    g.m = d.n;
    g.n = d.m;
    g.k = d.k;
    g.lda = d.n;
    g.ldb = d.k;
    g.ldc = d.n;
    g.stride_a = b_steps ? d.k * d.n : 0;
    g.stride_b = a_steps ? d.m * d.k : 0;
    g.stride_c = d.m * d.n;
    g.batch = static_cast<int32_t>(inner);
    g.ab_type = type;
    g.c_type = type;
    g.allow_tf32 = problem.allow_tf32;
    for (int64_t o = 0; o < outer; ++o) {
      int64_t a_index = 0, b_index = 0;
      d.batch.OperandIndices(o * inner, &a_index, &b_index);
      const auto* a_ptr = static_cast<const std::byte*>(buf.inputs[0]) + a_index * d.m * d.k * elem;
      const auto* b_ptr = static_cast<const std::byte*>(buf.inputs[1]) + b_index * d.k * d.n * elem;
      auto* c_ptr = static_cast<std::byte*>(buf.output) + o * inner * d.m * d.n * elem;
      AN1_RETURN_IF_ERROR(
          gpu.Check(gpu.gemm().Run(g, b_ptr, a_ptr, c_ptr, policy, slot.workspace, slot.stream)));
    }
    return OkStatus();
  };
  return RunStaged(gpu, context, {&a, &b}, 0, output, compute, times);
}

}  // namespace an1
