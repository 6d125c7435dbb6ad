#include "engine/engine.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <new>

#include "engine/cpu_backend.h"

namespace an1 {
namespace {

double SecondsBetween(std::chrono::steady_clock::time_point a,
                      std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Status CheckOutputSize(std::span<std::byte> output, const TensorSpec& spec) {
  if (output.size() != spec.byte_size) {
    return InvalidArgumentError("output buffer has " + std::to_string(output.size()) +
                                " bytes, the result needs " + std::to_string(spec.byte_size));
  }
  return OkStatus();
}

}  // namespace

std::string_view BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto:
      return "auto";
    case BackendKind::kAn1:
      return "an1";
    case BackendKind::kBaseline:
      return "baseline";
  }
  return "unknown";
}

std::optional<BackendKind> ParseBackendKind(std::string_view name) {
  if (name == "auto") return BackendKind::kAuto;
  if (name == "an1") return BackendKind::kAn1;
  if (name == "baseline") return BackendKind::kBaseline;
  return std::nullopt;
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  if (options.max_queue_depth < 1) return InvalidArgumentError("max_queue_depth must be >= 1");
  if (options.executor_threads < 1) return InvalidArgumentError("executor_threads must be >= 1");
  if (options.cpu_threads < 0) return InvalidArgumentError("cpu_threads must be >= 0");
  if (options.limits.max_rank < 2) return InvalidArgumentError("max_rank must be >= 2");
  return std::unique_ptr<Engine>(new Engine(options));
}

Engine::Engine(const EngineOptions& options)
    : options_(options), baseline_(std::make_unique<CpuBackend>(options.cpu_threads)) {
  if (options_.disable_gpu) {
    gpus_.reason = "GPU use disabled by configuration";
  } else {
    gpus_ = kernels::DiscoverGpus();
  }
  license_ = std::make_unique<LicenseState>(options_.license, gpus_.devices);
  for (int i = 0; i < options_.executor_threads; ++i) {
    executors_.emplace_back([this] { ExecutorLoop(); });
  }
}

Engine::~Engine() { Drain(); }

std::string Engine::An1UnavailableReason() const {
  std::string reasons;
  auto add = [&reasons](const std::string& reason) {
    reasons += (reasons.empty() ? "" : "; ") + reason;
  };
  const LicenseStatus license = license_->Current();
  if (!license.valid) add("no valid license: " + license.reason);
  // The GPU backends (GPU baseline, an1 kernels) are not part of this build yet, so every
  // request runs on the CPU reference; a found GPU is still reported in Info().
  add(gpus_.devices.empty() ? "no usable GPU (" + gpus_.reason + ")"
                            : "the an1 GPU kernels are not part of this build");
  return reasons;
}

StatusOr<BackendChoice> Engine::Choose(BackendKind requested) const {
  const BackendKind policy = requested == BackendKind::kAuto ? options_.default_policy : requested;
  BackendChoice choice;
  choice.requested = requested;
  choice.backend = baseline_.get();
  choice.kind = BackendKind::kBaseline;
  switch (policy) {
    case BackendKind::kAn1:
      // Never a silent fallback: an explicit an1 (from the request or the server's policy) fails.
      return FailedPreconditionError("backend an1 is unavailable: " + An1UnavailableReason());
    case BackendKind::kAuto:
      choice.reason = "an1 is unavailable: " + An1UnavailableReason();
      return choice;
    case BackendKind::kBaseline:
      if (requested == BackendKind::kAuto)
        choice.reason = "the server's backend policy is baseline";
      return choice;
  }
  return InternalError("unknown backend policy");
}

StatusOr<PreparedAttention> Engine::PrepareAttention(const AttentionInputs& inputs,
                                                     BackendKind requested) const {
  StatusOr<ValidatedAttention> problem = ValidateAttention(inputs, options_.limits);
  if (!problem.ok()) return problem.status();
  StatusOr<BackendChoice> choice = Choose(requested);
  if (!choice.ok()) return choice.status();
  return PreparedAttention{inputs, std::move(problem).value(), std::move(choice).value()};
}

StatusOr<PreparedMatmul> Engine::PrepareMatmul(const TensorView& a, const TensorView& b,
                                               BackendKind requested) const {
  StatusOr<ValidatedMatmul> problem = ValidateMatmul(a, b, options_.limits);
  if (!problem.ok()) return problem.status();
  StatusOr<BackendChoice> choice = Choose(requested);
  if (!choice.ok()) return choice.status();
  return PreparedMatmul{a, b, std::move(problem).value(), std::move(choice).value()};
}

Status Engine::Submit(PreparedAttention request, std::span<std::byte> output,
                      RequestControl control, DoneCallback done) {
  AN1_RETURN_IF_ERROR(CheckOutputSize(output, request.problem.output));
  auto shared = std::make_shared<PreparedAttention>(std::move(request));
  Job job{shared->choice,
          [shared, output](Backend& backend) {
            return backend.Attention(shared->problem, shared->inputs, output);
          },
          std::move(control),
          std::move(done),
          {}};
  return Enqueue(std::move(job));
}

Status Engine::Submit(PreparedMatmul request, std::span<std::byte> output, RequestControl control,
                      DoneCallback done) {
  AN1_RETURN_IF_ERROR(CheckOutputSize(output, request.problem.output));
  auto shared = std::make_shared<PreparedMatmul>(std::move(request));
  Job job{shared->choice,
          [shared, output](Backend& backend) {
            return backend.Matmul(shared->problem, shared->a, shared->b, output);
          },
          std::move(control),
          std::move(done),
          {}};
  return Enqueue(std::move(job));
}

Status Engine::Enqueue(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (draining_) return UnavailableError("the server is shutting down");
    if (static_cast<int>(queue_.size()) >= options_.max_queue_depth) {
      return ResourceExhaustedError("the request queue is full (" +
                                    std::to_string(options_.max_queue_depth) +
                                    " waiting); retry later");
    }
    job.admitted = std::chrono::steady_clock::now();
    queue_.push_back(std::move(job));
  }
  work_available_.notify_one();
  return OkStatus();
}

void Engine::ExecutorLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      work_available_.wait(lock, [this] { return draining_ || !queue_.empty(); });
      if (queue_.empty()) return;  // draining and nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      running_.fetch_add(1);
    }
    Run(job);
    running_.fetch_sub(1);
  }
}

void Engine::Run(Job& job) {
  const auto started = std::chrono::steady_clock::now();
  ExecutionReport report;
  report.backend = job.choice.kind;
  report.requested = job.choice.requested;
  report.reason = job.choice.reason;
  report.device = job.choice.backend->device();
  report.queue_seconds = SecondsBetween(job.admitted, started);

  Status status;
  if (job.control.cancelled && job.control.cancelled->load()) {
    status = CancelledError("the client cancelled the request before it started");
  } else if (started > job.control.deadline) {
    status = DeadlineExceededError("the deadline passed while the request waited in the queue");
  } else {
    try {
      status = job.compute(*job.choice.backend);
    } catch (const std::bad_alloc&) {
      status = ResourceExhaustedError("out of host memory");
    } catch (const std::exception& e) {
      spdlog::error("request failed with an exception: {}", e.what());
      status = InternalError("internal error");
    } catch (...) {
      spdlog::error("request failed with an unknown exception");
      status = InternalError("internal error");
    }
    report.compute_seconds = SecondsBetween(started, std::chrono::steady_clock::now());
  }
  job.done(status, report);
}

void Engine::Drain() {
  {
    std::lock_guard lock(mutex_);
    if (draining_ && executors_.empty()) return;
    draining_ = true;
  }
  work_available_.notify_all();
  for (std::thread& t : executors_) t.join();
  executors_.clear();
}

int Engine::queue_depth() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(queue_.size());
}

EngineInfo Engine::Info() const {
  EngineInfo info;
  info.gpu_mode = false;
  info.mode_reason = gpus_.devices.empty()
                         ? "serving on the CPU: " + gpus_.reason
                         : "serving on the CPU: GPU execution is not part of this build";
  info.devices = gpus_.devices;
  info.backends = {{BackendKind::kAn1, false, An1UnavailableReason()},
                   {BackendKind::kBaseline, true, ""}};
  info.license = license_->Current();
  info.an1_licensed_gpus = license_->licensed_gpus();
  info.default_policy = options_.default_policy;
  info.limits = options_.limits;
  info.max_queue_depth = options_.max_queue_depth;
  return info;
}

}  // namespace an1
