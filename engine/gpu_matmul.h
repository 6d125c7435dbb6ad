// Matmul on a GPU (CUDA builds only): (..., m, k) @ (..., k, n) with NumPy batch broadcasting, as
// strided-batched cuBLASLt calls. Both GPU backends use it, with their own algorithm policy.
#pragma once

#include <span>

#include "engine/backend.h"
#include "engine/gpu_context.h"
#include "kernels/gemm.h"

namespace an1 {

// Writes a @ b into `output`; the error contract of Backend::Matmul.
Status RunGpuMatmul(GpuContext& gpu, kernels::AlgoPolicy policy, const ValidatedMatmul& problem,
                    const TensorView& a, const TensorView& b, std::span<std::byte> output,
                    const ExecutionContext& context, ExecutionTimes* times);

}  // namespace an1
