// A kernel that makes the device fault (an illegal address), for testing the engine's handling
// of sticky CUDA errors. Never called outside tests. CUDA builds only.
#pragma once

#include <cuda_runtime.h>

namespace an1::kernels {

void LaunchFaultingKernelForTesting(cudaStream_t stream);

}  // namespace an1::kernels
