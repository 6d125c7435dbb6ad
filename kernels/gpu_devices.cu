#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "kernels/gpu_devices.h"

namespace an1::kernels {
namespace {

std::string FormatUuid(const cudaUUID_t& uuid) {
  const auto* b = reinterpret_cast<const unsigned char*>(uuid.bytes);
  char text[64];
  std::snprintf(text, sizeof(text),
                "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                b[14], b[15]);
  return text;
}

}  // namespace

bool BuiltWithCuda() { return true; }

GpuDiscovery DiscoverGpus() {
  GpuDiscovery result;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    const char* what = err == cudaErrorInsufficientDriver ? "no NVIDIA driver, or one too old"
                       : err == cudaErrorNoDevice         ? "no CUDA device"
                                                          : "CUDA initialisation failed";
    result.reason =
        std::string(what) + " (" + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) + ")";
    cudaGetLastError();  // clear the non-sticky error
    return result;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    GpuDevice dev;
    dev.index = i;
    dev.name = prop.name;
    dev.uuid = FormatUuid(prop.uuid);
    dev.compute_capability_major = prop.major;
    dev.compute_capability_minor = prop.minor;
    dev.total_memory_bytes = prop.totalGlobalMem;
    result.devices.push_back(std::move(dev));
  }
  if (result.devices.empty()) result.reason = "CUDA found no device";
  return result;
}

}  // namespace an1::kernels
