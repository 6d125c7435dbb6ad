// Built instead of gpu_devices.cu when no CUDA toolkit is available.
#include "kernels/gpu_devices.h"

namespace an1::kernels {

bool BuiltWithCuda() { return false; }

GpuDiscovery DiscoverGpus() {
  return GpuDiscovery{{}, "this build has no CUDA support (no CUDA toolkit at build time)"};
}

}  // namespace an1::kernels
