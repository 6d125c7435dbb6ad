// Classification of CUDA runtime errors into KernelStatus kinds (CUDA builds only).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "kernels/kernel_status.h"

namespace an1::kernels {

// Returns OK for cudaSuccess. Out-of-memory is recoverable; errors that corrupt the context
// (illegal address, launch failure, ECC, ...) are device faults; the rest are internal. Clears
// the runtime's last error for the recoverable kinds.
KernelStatus FromCuda(cudaError_t error, const char* what);

// True for errors after which the context is unusable until the process restarts.
bool IsStickyCudaError(cudaError_t error);

}  // namespace an1::kernels
