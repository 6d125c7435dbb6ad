// GpuContext (CUDA builds only): what the engine keeps per GPU — its streams (one slot per
// executor, each with a workspace, pinned staging and device memory), its cuBLASLt runner, its
// properties and its health. The GPU backends (gpu_baseline_backend.h, gpu_an1_backend.h) run
// requests on it.
//
// Thread-safety: each slot is used by one executor thread at a time; everything else is safe to
// share.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/device_health.h"
#include "engine/device_id.h"
#include "engine/options.h"
#include "engine/status.h"
#include "engine/thread_pool.h"
#include "kernels/gemm.h"

namespace an1 {

class GpuContext final : public DeviceHealth {
 public:
  // Creates `slots` streams (with workspaces) on device `index`, whose executors wait for their
  // stream as `wait` says (EngineOptions::gpu_wait). Errors: UNAVAILABLE when the device cannot
  // be initialised, UNIMPLEMENTED when cuBLASLt cannot be loaded.
  static StatusOr<std::unique_ptr<GpuContext>> Create(
      int index, int slots, EngineOptions::GpuWait wait = EngineOptions::GpuWait::kYield);
  ~GpuContext();

  int index() const { return index_; }
  DeviceId device() const { return DeviceId::Cuda(index_); }
  int slots() const { return static_cast<int>(slots_.size()); }
  // Read once at creation: kernels check their coverage against these.
  const cudaDeviceProp& properties() const { return properties_; }
  bool healthy() const override { return healthy_.load(); }
  std::string fault() const override;

  // Takes the device out of service after a sticky error; later requests get UNAVAILABLE.
  void MarkFaulty(const std::string& reason);
  // Launches a kernel that faults the device: a test hook for the fault paths.
  void InjectFaultForTesting() override;

  struct Slot {
    cudaStream_t stream = nullptr;
    void* workspace = nullptr;     // kernels::kGemmWorkspaceBytes of device memory
    std::byte* staging = nullptr;  // pinned host memory
    std::size_t staging_bytes = 0;
    // Device memory for uploads, outputs and scratch, kept between requests and grown when a
    // request needs more: a fresh multi-GiB stream-ordered allocation per request costs tens of
    // microseconds, which is most of the service overhead of a CUDA IPC request.
    void* device = nullptr;
    std::size_t device_bytes = 0;
    cudaEvent_t events[4] = {};  // before upload, after upload, after compute, after download
  };
  Slot& slot(int i) { return slots_[i]; }
  kernels::GemmRunner& gemm() { return *gemm_; }
  // Host threads that copy between request memory and the pinned staging buffers: one thread
  // copies at a fraction of what the host's memory bandwidth allows.
  ThreadPool& copy_pool() { return copy_pool_; }

  // Makes the slot's pinned staging buffer at least `bytes` long. RESOURCE_EXHAUSTED on failure.
  Status EnsureStaging(Slot& slot, std::size_t bytes);
  // Makes the slot's device buffer at least `bytes` long (stream-ordered; on out-of-memory the
  // old buffer is released, the pool trimmed and the allocation retried once).
  // RESOURCE_EXHAUSTED when it still fails.
  Status EnsureDevice(Slot& slot, std::size_t bytes);
  // Maps a kernels-layer error to a Status, taking the device out of service on a fault.
  Status Check(const kernels::KernelStatus& status);
  Status CheckCuda(cudaError_t error, const char* what);

 private:
  explicit GpuContext(int index) : index_(index), copy_pool_(kCopyThreads) {}
  static constexpr int kCopyThreads = 3;

  int index_;
  cudaDeviceProp properties_{};
  std::vector<Slot> slots_;
  std::unique_ptr<kernels::GemmRunner> gemm_;
  ThreadPool copy_pool_;
  std::atomic<bool> healthy_{true};
  mutable std::mutex fault_mutex_;
  std::string fault_;
};

}  // namespace an1
