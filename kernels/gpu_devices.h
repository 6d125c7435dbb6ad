// Discovery of the CUDA devices this process can use.
//
// DiscoverGpus() asks the CUDA runtime (linked statically, so the binary also starts on hosts
// with no CUDA libraries). It never throws or aborts: when no device is usable it returns an
// empty list and a reason a person can act on. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace an1::kernels {

struct GpuDevice {
  int index = 0;
  std::string name;
  std::string uuid;  // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  int compute_capability_major = 0;
  int compute_capability_minor = 0;
  uint64_t total_memory_bytes = 0;
};

struct GpuDiscovery {
  std::vector<GpuDevice> devices;
  std::string reason;  // why `devices` is empty; empty otherwise
};

GpuDiscovery DiscoverGpus();

// True when this build contains CUDA code (compiled with nvcc for sm_90a).
bool BuiltWithCuda();

}  // namespace an1::kernels
