#include "kernels/nvml_power.h"

#include <dlfcn.h>

#include <mutex>
#include <type_traits>

namespace an1::kernels {
namespace {

// The few NVML entry points we use, declared by hand (signatures from NVML's public API; every
// one returns nvmlReturn_t, 0 on success).
using NvmlDevice = void*;
struct NvmlApi {
  int (*init)() = nullptr;
  int (*by_uuid)(const char* uuid, NvmlDevice* device) = nullptr;
  int (*energy)(NvmlDevice device, unsigned long long* millijoules) = nullptr;
  int (*power)(NvmlDevice device, unsigned int* milliwatts) = nullptr;
  const char* (*error_string)(int result) = nullptr;
  std::string error;  // why the API is unusable; empty when loaded
};

const NvmlApi& Api() {
  static NvmlApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    // Never closed: NVML stays loaded and initialised for the life of the process.
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      api.error = "NVML is not installed (libnvidia-ml.so.1 not found)";
      return;
    }
    auto load = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      return fn != nullptr;
    };
    if (!load(api.init, "nvmlInit_v2") || !load(api.by_uuid, "nvmlDeviceGetHandleByUUID") ||
        !load(api.energy, "nvmlDeviceGetTotalEnergyConsumption") ||
        !load(api.power, "nvmlDeviceGetPowerUsage") || !load(api.error_string, "nvmlErrorString")) {
      api.error = "NVML lacks a needed function";
      return;
    }
    if (const int rc = api.init(); rc != 0) {
      api.error = std::string("nvmlInit failed: ") + api.error_string(rc);
    }
  });
  return api;
}

}  // namespace

std::unique_ptr<GpuPowerSensor> GpuPowerSensor::Open(const std::string& uuid, std::string* why) {
  const NvmlApi& api = Api();
  if (!api.error.empty()) {
    *why = api.error;
    return nullptr;
  }
  NvmlDevice device = nullptr;
  if (const int rc = api.by_uuid(uuid.c_str(), &device); rc != 0) {
    *why = "NVML does not know " + uuid + ": " + api.error_string(rc);
    return nullptr;
  }
  std::unique_ptr<GpuPowerSensor> sensor(new GpuPowerSensor(device));
  if (!sensor->EnergyMillijoules()) {
    *why = "this GPU reports no energy counter";
    return nullptr;
  }
  return sensor;
}

std::optional<uint64_t> GpuPowerSensor::EnergyMillijoules() const {
  unsigned long long millijoules = 0;
  if (Api().energy(device_, &millijoules) != 0) return std::nullopt;
  return millijoules;
}

std::optional<double> GpuPowerSensor::PowerWatts() const {
  unsigned int milliwatts = 0;
  if (Api().power(device_, &milliwatts) != 0) return std::nullopt;
  return milliwatts / 1000.0;
}

}  // namespace an1::kernels
