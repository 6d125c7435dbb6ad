#include "kernels/cuda_check.h"

namespace an1::kernels {

bool IsStickyCudaError(cudaError_t error) {
  switch (error) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorLaunchTimeout:
    case cudaErrorUnknown:
    case cudaErrorDevicesUnavailable:
    case cudaErrorContextIsDestroyed:
      return true;
    default:
      return false;
  }
}

KernelStatus FromCuda(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return KernelStatus::Ok();
  const std::string message =
      std::string(what) + ": " + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) + ")";
  if (error == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so that the next call starts clean
    return KernelStatus::Error(KernelStatus::Kind::kOutOfMemory, message);
  }
  if (IsStickyCudaError(error)) {
    return KernelStatus::Error(KernelStatus::Kind::kDeviceFault, message);
  }
  cudaGetLastError();
  // Errors missing from the list above: a context that still fails a trivial call after the
  // error was cleared is broken for good.
  if (cudaFree(nullptr) != cudaSuccess) {
    return KernelStatus::Error(KernelStatus::Kind::kDeviceFault, message);
  }
  return KernelStatus::Error(KernelStatus::Kind::kInternal, message);
}

}  // namespace an1::kernels
