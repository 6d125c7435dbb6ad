#include "kernels/cuda_ipc.h"

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstring>

#include "kernels/cuda_check.h"

namespace an1::kernels {
namespace {

using GetAddressRange = CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr);

// cuMemGetAddressRange from the driver, through the runtime (no link to libcuda).
GetAddressRange AddressRangeFunction() {
  static const GetAddressRange function = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<GetAddressRange>(nullptr);
    }
    return reinterpret_cast<GetAddressRange>(fn);
  }();
  return function;
}

}  // namespace

KernelStatus OpenCudaIpcMemory(int device, const void* handle, void** pointer,
                               uint64_t* available_bytes) {
  static_assert(sizeof(cudaIpcMemHandle_t) == kCudaIpcHandleBytes);
  if (KernelStatus s = FromCuda(cudaSetDevice(device), "cudaSetDevice"); !s.ok()) return s;
  cudaIpcMemHandle_t ipc{};
  std::memcpy(&ipc, handle, sizeof(ipc));
  const cudaError_t opened = cudaIpcOpenMemHandle(pointer, ipc, cudaIpcMemLazyEnablePeerAccess);
  if (opened != cudaSuccess) {
    cudaGetLastError();
    return KernelStatus::Error(
        KernelStatus::Kind::kInternal,
        std::string("the CUDA IPC handle cannot be opened (") + cudaGetErrorName(opened) + ")");
  }
  // The exported allocation's real extent, so that registration can check the claimed size.
  CUdeviceptr base = 0;
  size_t size = 0;
  const GetAddressRange range = AddressRangeFunction();
  if (range == nullptr ||
      range(&base, &size, reinterpret_cast<CUdeviceptr>(*pointer)) != CUDA_SUCCESS) {
    cudaIpcCloseMemHandle(*pointer);
    return KernelStatus::Error(KernelStatus::Kind::kInternal,
                               "the size of the CUDA IPC allocation cannot be determined");
  }
  *available_bytes = base + size - reinterpret_cast<CUdeviceptr>(*pointer);
  return KernelStatus::Ok();
}

void CloseCudaIpcMemory(int device, void* pointer) {
  cudaSetDevice(device);
  cudaIpcCloseMemHandle(pointer);
}

}  // namespace an1::kernels
