// A request on its way through the engine: prepared (validated, backend chosen), controlled by
// its transport (deadline, cancellation), and reported on when done.
//
// PreparedRequest is the same for every op: Engine::Prepare<Op> (Attention, PagedAttention, Matmul)
// bind the validated problem into `run`, so queues, executors and the server handle every op alike.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backend.h"
#include "engine/backend_choice.h"
#include "engine/device_id.h"
#include "engine/status.h"
#include "engine/tensor.h"

namespace an1 {

// A validated request of any op, with its backend chosen, ready to submit.
struct PreparedRequest {
  OpKind op = OpKind::kAttention;
  BackendChoice choice;
  TensorSpec output;  // what the result will be
  // Where the output span will be: -1 host memory (default), N memory of CUDA device N. Set by
  // the caller before Submit when it directs the output into device memory.
  int output_device = -1;
  std::vector<TensorView> inputs;  // the op's tensors (their bytes stay the caller's)
  // attention: B * Sq; paged attention: total_q; matmul: rows of the output over every batch
  uint64_t tokens = 0;
  // Floating-point operations of the op (attention 4 B H Sq Sk D, matmul 2 M N K per batch), for
  // the admission-time deadline estimate (cost_model.h); 0: unknown, never refused for time.
  double work = 0;
  std::size_t extra_output_bytes = 0;  // outputs besides `output` (the LSE), for the byte budget
  // Runs the op on `backend` into `output` (exactly output.byte_size bytes).
  std::function<Status(Backend& backend, const ExecutionContext& context,
                       std::span<std::byte> output, ExecutionTimes* times)>
      run;
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
  DeviceId device;
  double queue_seconds = 0;
  double compute_seconds = 0;
  double copy_seconds = 0;  // host <-> device transfers (GPU only)
  std::size_t output_bytes = 0;
  std::size_t copied_bytes = 0;  // tensor bytes moved between host and device (GPU only)
  uint64_t tokens = 0;           // as PreparedRequest::tokens
  std::string kernel;            // as ExecutionTimes::kernel; empty when none was chosen
  // The GPU energy this request used (its share of the NVML energy counter, energy_meter.h);
  // nullopt on the CPU and where the GPU reports no energy.
  std::optional<double> energy_joules;
};

// Called exactly once per admitted request, when it finished or was dropped: on an executor
// thread, or, for a request dropped from its queue because its caller left, on the thread that
// dropped it (Engine::Withdraw, or any later Engine::Submit, which drops such requests first).
// So a caller must not hold, across Submit or Withdraw, a lock its DoneCallbacks take.
using DoneCallback = std::function<void(const Status&, const ExecutionReport&)>;

// Gives the bytes the result of `spec` goes to (exactly spec.byte_size of them), called on the
// executor thread just before the request runs, so that output memory is only taken for admitted
// work (and the caller may finish preparing its inputs there too). An error fails the request.
// The bytes must stay valid until the DoneCallback has run.
using OutputProvider = std::function<StatusOr<std::span<std::byte>>(const TensorSpec& spec)>;

}  // namespace an1
