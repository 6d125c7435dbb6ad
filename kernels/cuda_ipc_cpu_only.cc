// Built instead of cuda_ipc.cc when no CUDA toolkit is available.
#include "kernels/cuda_ipc.h"

namespace an1::kernels {

KernelStatus OpenCudaIpcMemory(int, const void*, void**, uint64_t*) {
  return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                             "this build has no CUDA support, so no CUDA IPC memory");
}

void CloseCudaIpcMemory(int, void*) {}

}  // namespace an1::kernels
