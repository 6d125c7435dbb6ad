// The engine: validates requests, picks a backend and a device, queues requests per device and
// runs them on executor threads (one per CUDA stream on a GPU).
//
// Thread-safety: every public method may be called from any thread. Ownership: the caller keeps
// the input bytes (the TensorViews) and the output span alive until the DoneCallback has run.
// Errors are Status values (status.h); the engine never throws or aborts on a request's behalf.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/energy_meter.h"
#include "engine/license_state.h"
#include "engine/options.h"
#include "engine/status.h"
#include "engine/validation.h"
#include "kernels/gpu_devices.h"

namespace an1 {

// "auto", "an1", "baseline".
std::string_view BackendKindName(BackendKind kind);
// Parses the names above; nullopt for anything else.
std::optional<BackendKind> ParseBackendKind(std::string_view name);

// The backend a request will run on, and why it is not the one asked for.
struct BackendChoice {
  BackendKind kind = BackendKind::kBaseline;  // never kAuto
  BackendKind requested = BackendKind::kAuto;
  std::string reason;
};

struct PreparedAttention {
  AttentionInputs inputs;
  ValidatedAttention problem;
  BackendChoice choice;
  int output_device = -1;  // set by the caller when the output span will be device memory
};

struct PreparedMatmul {
  TensorView a, b;
  ValidatedMatmul problem;
  BackendChoice choice;
  int output_device = -1;
};

// What the transport knows about a request besides its tensors.
struct RequestControl {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Set by the transport when the client goes away (or gRPC cancels the call at its deadline);
  // work not yet started is then dropped.
  std::shared_ptr<std::atomic<bool>> cancelled;

  // Why the request should stop now: DEADLINE_EXCEEDED once the deadline has passed (also when
  // the transport cancelled the call for that reason: the code the client sees), CANCELLED once
  // the client left, OK otherwise. `when` ends the message ("before it started", ...).
  Status StopReason(std::string_view when) const;
};

struct ExecutionReport {
  // False when the request was dropped before a backend ran it (its caller left, its deadline
  // passed, or the engine drained): `backend` then names only the choice, nothing ran.
  bool executed = false;
  BackendKind backend = BackendKind::kBaseline;
  BackendKind requested = BackendKind::kAuto;
  std::string reason;
  std::string device;
  double queue_seconds = 0;
  double compute_seconds = 0;
  double copy_seconds = 0;  // host <-> device transfers (GPU only)
  std::size_t output_bytes = 0;
  std::size_t copied_bytes = 0;  // tensor bytes moved between host and device (GPU only)
  uint64_t tokens = 0;           // attention: B * Sq; matmul: rows of the output over every batch
  // The GPU energy this request used (its share of the NVML energy counter, energy_meter.h);
  // nullopt on the CPU and where the GPU reports no energy.
  std::optional<double> energy_joules;
};

// A GPU's energy counter and power, for the metrics.
struct GpuEnergyReading {
  std::string device;              // "cuda:N"
  std::optional<double> joules;    // counted since the server started; nullopt: unavailable
  std::optional<double> watts;     // board power now (NVML's one-second average)
  std::string unavailable_reason;  // why joules is nullopt
};

// Called exactly once per admitted request, on an engine thread, when it finished or was dropped.
using DoneCallback = std::function<void(const Status&, const ExecutionReport&)>;

// Gives the bytes the result of `spec` goes to (exactly spec.byte_size of them), called on the
// executor thread just before the request runs, so that output memory is only taken for admitted
// work (and the caller may finish preparing its inputs there too). An error fails the request.
// The bytes must stay valid until the DoneCallback has run.
using OutputProvider = std::function<StatusOr<std::span<std::byte>>(const TensorSpec& spec)>;

struct BackendAvailability {
  BackendKind kind = BackendKind::kBaseline;
  bool available = false;
  std::string reason;  // why not, when unavailable (or what it cannot do yet)
};

struct DeviceStatus {
  std::string name;  // "cpu" or "cuda:N"
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

// GPU memory exported by another process (CUDA IPC), open while this object lives.
class IpcMemory {
 public:
  IpcMemory(int device, std::byte* data, uint64_t bytes)
      : device_(device), data_(data), bytes_(bytes) {}
  ~IpcMemory();
  IpcMemory(const IpcMemory&) = delete;
  IpcMemory& operator=(const IpcMemory&) = delete;

  int device() const { return device_; }
  std::byte* data() const { return data_; }
  uint64_t byte_size() const { return bytes_; }  // from data() to the allocation's end

 private:
  int device_;
  std::byte* data_;
  uint64_t bytes_;
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
  // RESOURCE_EXHAUSTED (above the size limits), FAILED_PRECONDITION (an unavailable backend was
  // asked for explicitly, with the reason), UNAVAILABLE (every GPU is out of service).
  StatusOr<PreparedAttention> PrepareAttention(const AttentionInputs& inputs,
                                               BackendKind requested) const;
  StatusOr<PreparedMatmul> PrepareMatmul(const TensorView& a, const TensorView& b,
                                         BackendKind requested, bool allow_tf32 = false) const;

  // Queues a prepared request on the least-loaded healthy device that has its backend; the
  // result goes where `output` says. Returns OK when admitted (then `done` will run), or,
  // without calling `done`: RESOURCE_EXHAUSTED when the device's queue or the in-flight bytes
  // are full, UNAVAILABLE when draining or no device is healthy. An error from `output` (or an
  // output of the wrong size) reaches `done`.
  Status Submit(PreparedAttention request, OutputProvider output, RequestControl control,
                DoneCallback done);
  Status Submit(PreparedMatmul request, OutputProvider output, RequestControl control,
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
  // Called with Healthy() whenever it changes. Set before traffic starts.
  void SetHealthListener(std::function<void(bool healthy)> listener);
  int queue_depth() const;
  int running() const { return running_.load(); }
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
  struct Site;
  struct Job {
    BackendChoice choice;
    OpKind op = OpKind::kAttention;
    std::size_t bytes = 0;  // counted against max_inflight_bytes
    int device = -1;        // >= 0: tensors live on this GPU, which must run the request
    TensorSpec output_spec;
    OutputProvider output;
    int output_device = -1;
    std::function<Status(Backend&, const ExecutionContext&, std::span<std::byte>, ExecutionTimes*)>
        compute;
    RequestControl control;
    DoneCallback done;
    std::chrono::steady_clock::time_point admitted;
    uint64_t tokens = 0;
    Site* site = nullptr;  // the queue it was admitted to
  };

  explicit Engine(const EngineOptions& options);
  Status Start();
  StatusOr<BackendChoice> Choose(BackendKind requested, OpKind op) const;
  // Empty when an1 can run `op` now; otherwise every reason it cannot, joined by "; ".
  std::string An1UnavailableReason(OpKind op) const;
  Status Enqueue(Job job);
  // Takes out of every queue the requests whose caller is gone (cancelled flag or deadline),
  // releasing their bytes; the caller runs their DoneCallbacks after unlocking. Needs mutex_.
  void TakeAbandonedLocked(std::vector<Job>* abandoned);
  // Runs the DoneCallback of a request that never ran, with control.StopReason().
  static void FinishUnexecuted(const Site& site, Job& job);
  void ExecutorLoop(Site* site, int slot);
  void Run(Site& site, int slot, Job& job);
  void NotifyHealth();

  EngineOptions options_;
  kernels::GpuDiscovery gpus_;
  std::string gpu_setup_error_;  // a found GPU that could not be initialised
  std::unique_ptr<LicenseState> license_;
  std::vector<std::unique_ptr<Site>> sites_;

  std::mutex drain_mutex_;
  mutable std::mutex mutex_;  // guards the queues, draining_, inflight_bytes_
  bool draining_ = false;
  std::size_t inflight_bytes_ = 0;
  std::atomic<int> running_{0};
  std::function<void(bool)> health_listener_;
  bool last_health_ = true;
};

}  // namespace an1
