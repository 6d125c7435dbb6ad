// The engine: validates requests, picks a backend, queues them and runs them on executor threads.
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
#include <string>
#include <thread>
#include <vector>

#include "engine/backend.h"
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
  Backend* backend = nullptr;
  BackendKind kind = BackendKind::kBaseline;  // never kAuto
  BackendKind requested = BackendKind::kAuto;
  std::string reason;
};

struct PreparedAttention {
  AttentionInputs inputs;
  ValidatedAttention problem;
  BackendChoice choice;
};

struct PreparedMatmul {
  TensorView a, b;
  ValidatedMatmul problem;
  BackendChoice choice;
};

// What the transport knows about a request besides its tensors.
struct RequestControl {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Set by the transport when the client goes away; work not yet started is then dropped.
  std::shared_ptr<std::atomic<bool>> cancelled;
};

struct ExecutionReport {
  BackendKind backend = BackendKind::kBaseline;
  BackendKind requested = BackendKind::kAuto;
  std::string reason;
  std::string device;
  double queue_seconds = 0;
  double compute_seconds = 0;
};

// Called exactly once per admitted request, on an engine thread, when it finished or was dropped.
using DoneCallback = std::function<void(const Status&, const ExecutionReport&)>;

struct BackendAvailability {
  BackendKind kind = BackendKind::kBaseline;
  bool available = false;
  std::string reason;  // why not, when unavailable
};

struct EngineInfo {
  bool gpu_mode = false;
  std::string mode_reason;  // why the engine serves on the CPU
  std::vector<kernels::GpuDevice> devices;
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
  // inconsistent options.
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  ~Engine();  // Drain()s first.
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates a request and chooses its backend. Errors: INVALID_ARGUMENT (malformed),
  // RESOURCE_EXHAUSTED (above the size limits), FAILED_PRECONDITION (an unavailable backend was
  // asked for explicitly, with the reason).
  StatusOr<PreparedAttention> PrepareAttention(const AttentionInputs& inputs,
                                               BackendKind requested) const;
  StatusOr<PreparedMatmul> PrepareMatmul(const TensorView& a, const TensorView& b,
                                         BackendKind requested) const;

  // Queues a prepared request whose result goes to `output` (problem.output.byte_size bytes).
  // Returns OK when admitted (then `done` will run), or, without calling `done`,
  // RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE when draining, INVALID_ARGUMENT when
  // `output` has the wrong size.
  Status Submit(PreparedAttention request, std::span<std::byte> output, RequestControl control,
                DoneCallback done);
  Status Submit(PreparedMatmul request, std::span<std::byte> output, RequestControl control,
                DoneCallback done);

  // Stops admitting new requests, finishes the queued and running ones, joins the executors.
  // Idempotent.
  void Drain();

  EngineInfo Info() const;
  int queue_depth() const;
  int running() const { return running_.load(); }

 private:
  struct Job {
    BackendChoice choice;
    std::function<Status(Backend&)> compute;
    RequestControl control;
    DoneCallback done;
    std::chrono::steady_clock::time_point admitted;
  };

  explicit Engine(const EngineOptions& options);
  StatusOr<BackendChoice> Choose(BackendKind requested) const;
  // Empty when an1 can run now; otherwise every reason it cannot, joined by "; ".
  std::string An1UnavailableReason() const;
  Status Enqueue(Job job);
  void ExecutorLoop();
  void Run(Job& job);

  EngineOptions options_;
  kernels::GpuDiscovery gpus_;
  std::unique_ptr<Backend> baseline_;
  std::unique_ptr<LicenseState> license_;

  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<Job> queue_;
  bool draining_ = false;
  std::atomic<int> running_{0};
  std::vector<std::thread> executors_;
};

}  // namespace an1
