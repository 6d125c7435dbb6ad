// GPU power and energy from NVML, loaded with dlopen (no nvml.h on the build machine, and the
// binary must start where no driver is installed; docs/ARCHITECTURE.md, "Toolchain facts"). Needs
// no CUDA toolkit, so it builds in the CPU-only configuration too and simply finds no library
// there.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace an1::kernels {

class GpuPowerSensor {
 public:
  // The sensor of the GPU with this UUID ("GPU-..."), or null with the reason in `why` (NVML
  // missing, no such GPU, or a GPU that does not report energy).
  static std::unique_ptr<GpuPowerSensor> Open(const std::string& uuid, std::string* why);

  // The driver's energy counter (mJ since the driver loaded; monotonic), or nullopt on error.
  std::optional<uint64_t> EnergyMillijoules() const;
  // The power the board draws now (NVML's average over about a second), or nullopt.
  std::optional<double> PowerWatts() const;

 private:
  explicit GpuPowerSensor(void* device) : device_(device) {}
  void* device_;  // nvmlDevice_t
};

}  // namespace an1::kernels
