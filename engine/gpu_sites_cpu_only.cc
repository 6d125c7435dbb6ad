// Start-up of the sites in a build without CUDA: no GPU site, the CPU site only.
#include "engine/device_site.h"

namespace an1 {

std::vector<std::unique_ptr<DeviceSite>> StartGpuSites(
    const std::vector<kernels::GpuDevice>& /*devices*/, const std::vector<int>& /*licensed*/,
    const EngineOptions& /*options*/, std::string* /*errors*/) {
  return {};
}

}  // namespace an1
