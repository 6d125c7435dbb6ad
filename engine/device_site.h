// DeviceSite: one place requests run — the CPU, or one GPU — with its backends, its health, its
// energy meter and its queue. Device start-up (StartGpuSites, MakeCpuSite) lives here too, so
// that the engine holds sites without knowing whether this build has CUDA.
//
// Thread-safety: a site's members are set at start-up and read-only afterwards (the queue, the
// health and the meter are thread-safe themselves).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cost_model.h"
#include "engine/device_health.h"
#include "engine/device_id.h"
#include "engine/device_queue.h"
#include "engine/energy_meter.h"
#include "engine/options.h"
#include "kernels/gpu_devices.h"
#include "kernels/nvml_power.h"

namespace an1 {

struct DeviceSite {
  DeviceId device;
  std::unique_ptr<Backend> baseline;
  std::unique_ptr<Backend> an1;          // null where an1 may not run (no GPU, not licensed)
  std::shared_ptr<DeviceHealth> health;  // null on the CPU, which never goes out of service
  // The GPU's power sensor and the energy attribution of its requests; null on the CPU and
  // where NVML is missing (`energy_unavailable` says why).
  std::shared_ptr<kernels::GpuPowerSensor> sensor;
  std::unique_ptr<EnergyMeter> energy;
  std::string energy_unavailable;
  std::unique_ptr<DeviceQueue> queue;
  int executors = 1;  // executor threads the queue starts (one per slot)
  CostModel cost;     // the rates its runs have shown, for deadline admission

  bool healthy() const { return health == nullptr || health->healthy(); }
  std::string fault() const { return health ? health->fault() : std::string(); }
  Backend* backend(BackendKind kind) const {
    return kind == BackendKind::kAn1 ? an1.get() : baseline.get();
  }
};

// A site per GPU of `devices` that can be initialised, an1 only on the `licensed` indices; the
// GPUs that cannot are skipped, their errors appended to *errors ("; "-separated). Empty in a
// build without CUDA. Queues are made but not started.
std::vector<std::unique_ptr<DeviceSite>> StartGpuSites(
    const std::vector<kernels::GpuDevice>& devices, const std::vector<int>& licensed,
    const EngineOptions& options, std::string* errors);

// The CPU site: the CPU reference backend as the baseline, no an1.
std::unique_ptr<DeviceSite> MakeCpuSite(const EngineOptions& options);

}  // namespace an1
