#include "engine/device_site.h"

#include "engine/cpu_backend.h"

namespace an1 {

std::unique_ptr<DeviceSite> MakeCpuSite(const EngineOptions& options) {
  auto site = std::make_unique<DeviceSite>();
  site->device = DeviceId::Cpu();
  site->baseline = std::make_unique<CpuBackend>(options.cpu_threads);
  site->executors = options.executor_threads;
  // CPU executors never spin: a CPU request takes far longer than waking a thread.
  site->queue = std::make_unique<DeviceQueue>(site->device, options.max_queue_depth,
                                              std::chrono::microseconds(0));
  return site;
}

}  // namespace an1
