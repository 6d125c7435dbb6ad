// The Engine's reports on its devices — health, energy, Info() — and the device-level
// operations that are not requests: opening CUDA IPC memory, the fault-injection test hook.
#include <algorithm>

#include "engine/device_site.h"
#include "engine/engine.h"
#include "kernels/cuda_ipc.h"

namespace an1 {

std::vector<GpuEnergyReading> Engine::ReadGpuEnergy() const {
  std::vector<GpuEnergyReading> readings;
  for (const auto& site : sites_) {
    if (!site->device.is_cuda()) continue;
    GpuEnergyReading reading;
    reading.device = site->device;
    reading.unavailable_reason = site->energy_unavailable;
    if (site->energy) {
      reading.joules = site->energy->JoulesSinceStart();  // the sampler's latest read
      reading.watts = site->sensor->PowerWatts();
      if (!reading.joules) reading.unavailable_reason = "the NVML energy read failed";
    }
    readings.push_back(std::move(reading));
  }
  return readings;
}

bool Engine::Healthy() const {
  return std::any_of(sites_.begin(), sites_.end(), [](const auto& s) { return s->healthy(); });
}

void Engine::SetHealthListener(std::function<void(bool healthy)> listener) {
  // The new listener hears the current state at once, under the same lock as every later
  // change, so a change between reading the state and installing the listener is never lost.
  std::lock_guard lock(health_mutex_);
  health_listener_ = std::move(listener);
  last_health_ = Healthy();
  if (health_listener_) health_listener_(last_health_);
}

void Engine::NotifyHealth() {
  // Under the lock: changes reach the listener in the order they happened. Listeners must not
  // call back into the engine's health (the server's HealthService does not).
  std::lock_guard lock(health_mutex_);
  const bool healthy = Healthy();
  if (healthy == last_health_) return;
  last_health_ = healthy;
  if (health_listener_) health_listener_(healthy);
}

StatusOr<std::shared_ptr<IpcMemory>> Engine::OpenCudaIpcMemory(int device,
                                                               std::string_view handle) {
  if (handle.size() != kernels::kCudaIpcHandleBytes) {
    return InvalidArgumentError("a CUDA IPC handle has " +
                                std::to_string(kernels::kCudaIpcHandleBytes) + " bytes, not " +
                                std::to_string(handle.size()));
  }
  const bool served = std::any_of(sites_.begin(), sites_.end(), [&](const auto& site) {
    return site->device == DeviceId::Cuda(device) && site->healthy();
  });
  if (!served) {
    return FailedPreconditionError("CUDA IPC memory needs GPU " + std::to_string(device) +
                                   ", which this server does not serve" +
                                   (gpus_.devices.empty() ? " (" + gpus_.reason + ")" : ""));
  }
  void* pointer = nullptr;
  uint64_t bytes = 0;
  const kernels::KernelStatus opened =
      kernels::OpenCudaIpcMemory(device, handle.data(), &pointer, &bytes);
  if (opened.kind == kernels::KernelStatus::Kind::kUnsupported) {
    return FailedPreconditionError(opened.message);
  }
  if (!opened.ok()) return InvalidArgumentError(opened.message);
  return std::make_shared<IpcMemory>(device, static_cast<std::byte*>(pointer), bytes);
}

Status Engine::InjectDeviceFaultForTesting(int index) {
  for (auto& site : sites_) {
    if (site->device == DeviceId::Cuda(index) && site->health) {
      site->health->InjectFaultForTesting();
      NotifyHealth();
      return OkStatus();
    }
  }
  return NotFoundError("no GPU " + std::to_string(index) + " in use");
}

int Engine::queue_depth() const {
  int depth = 0;
  for (const auto& site : sites_) depth += site->queue->depth();
  return depth;
}

int Engine::running() const {
  int running = 0;
  for (const auto& site : sites_) running += site->queue->running();
  return running;
}

EngineInfo Engine::Info() const {
  EngineInfo info;
  info.gpu_mode = sites_.front()->device.is_cuda();
  if (!info.gpu_mode) {
    info.mode_reason =
        "serving on the CPU: " + (gpus_.devices.empty()
                                      ? gpus_.reason
                                      : "the GPUs could not be used (" + gpu_setup_error_ + ")");
  }
  info.devices = gpus_.devices;
  for (const auto& site : sites_)
    info.device_status.push_back({site->device, site->healthy(), site->fault()});
  const std::string attention = An1UnavailableReason(OpKind::kAttention);
  const std::string matmul = An1UnavailableReason(OpKind::kMatmul);
  BackendAvailability an1{BackendKind::kAn1, attention.empty() || matmul.empty(), attention};
  if (attention != matmul) {
    an1.reason = attention.empty() ? "matmul: " + matmul : "attention: " + attention;
    if (!attention.empty() && !matmul.empty()) an1.reason += "; matmul: " + matmul;
  }
  info.backends = {
      an1, {BackendKind::kBaseline, Healthy(), Healthy() ? "" : "every GPU is out of service"}};
  info.default_policy = options_.default_policy;
  info.limits = options_.limits;
  info.max_queue_depth = options_.max_queue_depth;
  info.license = license_->Current();
  info.an1_licensed_gpus = license_->licensed_gpus();
  return info;
}

}  // namespace an1
