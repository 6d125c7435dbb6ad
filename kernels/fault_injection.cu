#include "kernels/fault_injection.h"

namespace an1::kernels {
namespace {

__global__ void WriteToInvalidAddress(int* pointer) { *pointer = 1; }

}  // namespace

void LaunchFaultingKernelForTesting(cudaStream_t stream) {
  // An address no allocation has: the write raises cudaErrorIllegalAddress, which is sticky.
  WriteToInvalidAddress<<<1, 1, 0, stream>>>(reinterpret_cast<int*>(0x10));
}

}  // namespace an1::kernels
