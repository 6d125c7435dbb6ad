// Per-device launch setup the attention kernels share (host code in .cuh launchers): the
// shared-memory opt-in, a per-device function attribute, set once per kernel and device, and the
// device's SM count, read at the same time.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/kernel_status.h"

namespace an1::kernels::attention {

inline constexpr int kMaxSetUpDevices = 64;

// One kernel's setup state: the SM count of each device, 0 until the kernel is set up there.
// Each launcher keeps one as a function-local static.
using DeviceSetUp = std::atomic<int>[kMaxSetUpDevices];

// Sets `kernel`'s dynamic shared-memory limit to `smem_bytes` on the current device the first
// time, and gives the device's SM count in *sms. Racing first launches on one device both set the
// same attribute, which is harmless. `what` names the kernel in errors.
template <typename Kernel>
KernelStatus SetUpOnce(Kernel kernel, int smem_bytes, const char* what, DeviceSetUp& state,
                       int* sms) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxSetUpDevices) {
    return KernelStatus::Error(KernelStatus::Kind::kInternal,
                               std::string(what) + ": no current device");
  }
  *sms = state[device].load(std::memory_order_acquire);
  if (*sms != 0) return KernelStatus::Ok();
  cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess) return FromCuda(e, (std::string(what) + " setup").c_str());
  state[device].store(*sms, std::memory_order_release);
  return KernelStatus::Ok();
}

}  // namespace an1::kernels::attention
