// The engine: validates requests, chooses their backend (backend_choice.h) and device, and
// queues them on that device's DeviceQueue, whose executors run them.
//
// Thread-safety: every public method may be called from any thread. Ownership: the caller keeps
// the input bytes (the TensorViews) and the output span alive until the DoneCallback has run.
// Errors are Status values (status.h); the engine never throws or aborts on a request's behalf.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/backend_choice.h"
#include "engine/cuda_ipc_memory.h"
#include "engine/device_id.h"
#include "engine/license_state.h"
#include "engine/options.h"
#include "engine/paged_validation.h"
#include "engine/request.h"
#include "engine/status.h"
#include "engine/validation.h"
#include "kernels/gpu_devices.h"

namespace an1 {

struct DeviceSite;
struct Job;

// A GPU's energy counter and power, for the metrics.
struct GpuEnergyReading {
  DeviceId device;
  std::optional<double> joules;    // counted since the server started; nullopt: unavailable
  std::optional<double> watts;     // board power now (NVML's one-second average)
  std::string unavailable_reason;  // why joules is nullopt
};

struct BackendAvailability {
  BackendKind kind = BackendKind::kBaseline;
  bool available = false;
  std::string reason;  // why not, when unavailable (or what it cannot do yet)
};

struct DeviceStatus {
  DeviceId device;
  bool healthy = true;
  std::string fault;  // why it is out of service
};

struct EngineInfo {
  bool gpu_mode = false;
  std::string mode_reason;  // why the engine serves on the CPU
  std::vector<kernels::GpuDevice> devices;
  std::vector<DeviceStatus> device_status;
  std::vector<BackendAvailability> backends;
  BackendKind default_policy = BackendKind::kAuto;
  Limits limits;
  int max_queue_depth = 0;
  LicenseStatus license;
  std::vector<int> an1_licensed_gpus;  // indices into `devices`
};

class Engine {
 public:
  // Discovers devices and starts the executor threads. Fails with INVALID_ARGUMENT on
  // inconsistent options, UNAVAILABLE when a GPU that was found cannot be initialised.
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  ~Engine();  // Drain()s first.
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates a request and chooses its backend. Errors: INVALID_ARGUMENT (malformed),
  // RESOURCE_EXHAUSTED (above the size limits), FAILED_PRECONDITION (an unavailable an1 was asked
  // for explicitly, with the reason), UNIMPLEMENTED (an explicit an1 its kernels do not cover).
  StatusOr<PreparedRequest> PrepareAttention(const AttentionInputs& inputs,
                                             BackendKind requested) const;
  // Paged attention (paged_validation.h): also UNIMPLEMENTED when the chosen backend has no paged
  // attention (the GPU backends in this build). The index tensors' values are checked when the
  // request runs, once its inputs are read: INVALID_ARGUMENT then reaches the DoneCallback.
  StatusOr<PreparedRequest> PreparePagedAttention(const PagedAttentionInputs& inputs,
                                                  BackendKind requested) const;
  StatusOr<PreparedRequest> PrepareMatmul(const TensorView& a, const TensorView& b,
                                          BackendKind requested, bool allow_tf32 = false) const;

  // Queues a prepared request on the least-loaded healthy device that has its backend; the
  // result goes where `output` says. Returns OK when admitted (then `done` will run), or,
  // without calling `done`: RESOURCE_EXHAUSTED when the device's queue or the in-flight bytes
  // are full, UNAVAILABLE when draining or no device is healthy, CANCELLED/DEADLINE_EXCEEDED
  // when the caller is already gone. An error from `output` (or an output of the wrong size)
  // reaches `done`. Queued requests whose caller has left are dropped before admission is
  // decided: they hold no slot and no bytes.
  Status Submit(PreparedRequest request, OutputProvider output, RequestControl control,
                DoneCallback done);

  // The caller of a submitted request is gone (cancelled, or its deadline passed): sets its
  // cancelled flag and, while it still waits in a queue, takes it out at once, releasing its
  // queue slot and in-flight bytes, and runs its DoneCallback on this thread with
  // control.StopReason(). A request already running is stopped by its backend where it can be;
  // one already finished is left alone. Requests are matched by their `cancelled` flag.
  void Withdraw(const RequestControl& control);

  // Stops admitting new requests, finishes the queued and running ones, joins the executors.
  // Idempotent.
  void Drain();

  EngineInfo Info() const;
  // False once every device is out of service (the server then reports NOT_SERVING).
  bool Healthy() const;
  // Called with Healthy() at once, then whenever it changes, under a lock: the listener must not
  // call back into the engine. nullptr removes it.
  void SetHealthListener(std::function<void(bool healthy)> listener);
  int queue_depth() const;
  int running() const;
  // Energy counter and power of every GPU (empty on a CPU-only server). Reads NVML.
  std::vector<GpuEnergyReading> ReadGpuEnergy() const;

  // Opens another process's CUDA IPC handle (raw cudaIpcMemHandle_t bytes) on GPU `device`.
  // Errors: INVALID_ARGUMENT for a malformed handle or one that cannot be opened;
  // FAILED_PRECONDITION when this server does not serve that GPU (or has none).
  StatusOr<std::shared_ptr<IpcMemory>> OpenCudaIpcMemory(int device, std::string_view handle);

  // Makes GPU `index` fault as a real kernel error would: a test hook for the fault paths.
  // Returns NOT_FOUND when there is no such GPU.
  Status InjectDeviceFaultForTesting(int index);

 private:
  explicit Engine(const EngineOptions& options);
  Status Start();
  // Empty when an1 can run `op` now; otherwise every reason it cannot, joined by "; ".
  std::string An1UnavailableReason(OpKind op) const;
  // Why an1's kernels do not cover `problem` (empty when they do, or when no site has an1).
  std::string An1CannotRun(const ValidatedAttention& problem) const;
  void Run(DeviceSite& site, Job& job, int slot);
  // Drops queued requests whose caller is gone, answering each; releases their bytes.
  void DropAbandoned();
  // Runs the DoneCallback of a request that never ran, and releases its bytes.
  void FinishUnexecuted(const DeviceSite& site, Job& job);
  void NotifyHealth();

  EngineOptions options_;
  kernels::GpuDiscovery gpus_;
  std::string gpu_setup_error_;  // a found GPU that could not be initialised
  std::unique_ptr<LicenseState> license_;
  std::vector<std::unique_ptr<DeviceSite>> sites_;

  std::atomic<bool> draining_{false};
  mutable std::mutex bytes_mutex_;  // guards inflight_bytes_
  std::size_t inflight_bytes_ = 0;
  mutable std::mutex health_mutex_;  // guards health_listener_, last_health_
  std::function<void(bool)> health_listener_;
  bool last_health_ = true;
};

}  // namespace an1
