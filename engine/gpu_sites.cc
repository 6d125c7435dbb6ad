// Start-up of the GPU sites (CUDA builds; gpu_sites_cpu_only.cc stands in without CUDA).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/device_site.h"
#include "engine/gpu_an1_backend.h"
#include "engine/gpu_baseline_backend.h"
#include "engine/gpu_context.h"

namespace an1 {

std::vector<std::unique_ptr<DeviceSite>> StartGpuSites(
    const std::vector<kernels::GpuDevice>& devices, const std::vector<int>& licensed,
    const EngineOptions& options, std::string* errors) {
  std::vector<std::unique_ptr<DeviceSite>> sites;
  for (const kernels::GpuDevice& device : devices) {
    StatusOr<std::unique_ptr<GpuContext>> created =
        GpuContext::Create(device.index, options.streams_per_gpu, options.gpu_wait);
    if (!created.ok()) {
      spdlog::error("GPU {} cannot be used: {}", device.index, created.status().message());
      *errors += (errors->empty() ? "" : "; ") + created.status().message();
      continue;
    }
    std::shared_ptr<GpuContext> gpu = std::move(created).value();
    auto site = std::make_unique<DeviceSite>();
    site->device = gpu->device();
    site->health = gpu;
    site->executors = gpu->slots();
    // The backends keep a raw pointer: the site (through `health`) owns the context.
    site->baseline = std::make_unique<GpuBaselineBackend>(gpu.get());
    if (std::find(licensed.begin(), licensed.end(), device.index) != licensed.end()) {
      site->an1 = std::make_unique<GpuAn1Backend>(gpu.get());
    }
    site->sensor = kernels::GpuPowerSensor::Open(device.uuid, &site->energy_unavailable);
    if (site->sensor) {
      site->energy =
          std::make_unique<EnergyMeter>([sensor = site->sensor]() -> std::optional<double> {
            const std::optional<uint64_t> millijoules = sensor->EnergyMillijoules();
            if (!millijoules) return std::nullopt;
            return static_cast<double>(*millijoules) / 1000.0;
          });
      // A read costs milliseconds: sampled on the meter's thread, never on a request's path.
      site->energy->StartSampling(std::chrono::milliseconds(options.energy_sample_ms));
    } else {
      spdlog::warn("GPU {}: no power or energy metrics: {}", device.index,
                   site->energy_unavailable);
    }
    site->queue = std::make_unique<DeviceQueue>(
        site->device, options.max_queue_depth, std::chrono::microseconds(options.executor_spin_us));
    sites.push_back(std::move(site));
  }
  return sites;
}

}  // namespace an1
