#include "engine/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <new>
#include <utility>

#include "engine/device_site.h"

namespace an1 {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void Append(std::string& reasons, const std::string& reason) {
  reasons += (reasons.empty() ? "" : "; ") + reason;
}

// The GPU whose memory the request's tensors are in (-1: all host memory). INVALID_ARGUMENT
// when they are on different GPUs.
StatusOr<int> RequiredDevice(const PreparedRequest& request) {
  int device = -1;
  auto take = [&](int d) -> Status {
    if (d < 0) return OkStatus();
    if (device >= 0 && d != device) {
      return InvalidArgumentError("the request's tensors are on different GPUs (" +
                                  std::to_string(device) + " and " + std::to_string(d) + ")");
    }
    device = d;
    return OkStatus();
  };
  for (const TensorView& input : request.inputs) AN1_RETURN_IF_ERROR(take(input.device));
  AN1_RETURN_IF_ERROR(take(request.output_device));
  return device;
}

uint64_t OutputRows(const TensorSpec& output) {
  uint64_t rows = 1;
  for (std::size_t i = 0; i + 1 < output.shape.size(); ++i) rows *= output.shape[i];
  return rows;
}

// The report of a request taken off `site`'s queue at `now`, before it runs (executed = false).
ExecutionReport QueuedReport(const DeviceSite& site, const Job& job, Clock::time_point now) {
  ExecutionReport report;
  report.backend = job.request.choice.kind;
  report.requested = job.request.choice.requested;
  report.reason = job.request.choice.reason;
  report.device = site.device;
  report.queue_seconds = SecondsBetween(job.admitted, now);
  return report;
}

// Runs a completion, which must not end the process by throwing.
void RunDone(const DoneCallback& done, const Status& status, const ExecutionReport& report) {
  try {
    done(status, report);
  } catch (const std::exception& e) {
    spdlog::error("a request's completion failed: {}", e.what());
  } catch (...) {
    spdlog::error("a request's completion failed");
  }
}

}  // namespace

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  if (options.max_queue_depth < 1) return InvalidArgumentError("max_queue_depth must be >= 1");
  if (options.executor_threads < 1) return InvalidArgumentError("executor_threads must be >= 1");
  if (options.streams_per_gpu < 1) return InvalidArgumentError("streams_per_gpu must be >= 1");
  if (options.cpu_threads < 0) return InvalidArgumentError("cpu_threads must be >= 0");
  if (options.energy_sample_ms < 1) return InvalidArgumentError("energy_sample_ms must be >= 1");
  if (options.limits.max_rank < 2) return InvalidArgumentError("max_rank must be >= 2");
  std::unique_ptr<Engine> engine(new Engine(options));
  AN1_RETURN_IF_ERROR(engine->Start());
  return engine;
}

Engine::Engine(const EngineOptions& options) : options_(options) {
  if (options_.disable_gpu) {
    gpus_.reason = "GPU use disabled by configuration";
  } else {
    gpus_ = kernels::DiscoverGpus();
  }
  license_ = std::make_unique<LicenseState>(options_.license, gpus_.devices);
}

Status Engine::Start() {
  sites_ = StartGpuSites(gpus_.devices, license_->licensed_gpus(), options_, &gpu_setup_error_);
  if (sites_.empty()) sites_.push_back(MakeCpuSite(options_));
  for (auto& site : sites_) {
    DeviceSite* s = site.get();
    s->queue->Start(s->executors, [this, s](Job& job, int slot) { Run(*s, job, slot); });
  }
  return OkStatus();
}

Engine::~Engine() { Drain(); }

std::string Engine::An1UnavailableReason(OpKind op) const {
  std::string reasons;
  const LicenseStatus license = license_->Current();
  if (!license.valid) Append(reasons, "no valid license: " + license.reason);
  std::vector<const DeviceSite*> an1_sites;
  for (const auto& site : sites_) {
    if (site->an1) an1_sites.push_back(site.get());
  }
  const bool serving_on_cpu = !sites_.front()->device.is_cuda();
  if (gpus_.devices.empty()) {
    Append(reasons, "no usable GPU (" + gpus_.reason + ")");
  } else if (!kernels::BuiltWithCuda() || serving_on_cpu) {
    Append(reasons, "the GPUs could not be used (" + gpu_setup_error_ + ")");
  } else if (an1_sites.empty()) {
    if (license.valid) Append(reasons, "no GPU on this host is licensed for an1");
  } else if (std::none_of(an1_sites.begin(), an1_sites.end(),
                          [](const DeviceSite* s) { return s->healthy(); })) {
    Append(reasons, "every GPU licensed for an1 is out of service");
  } else if (std::string why = an1_sites.front()->an1->Unsupported(op); !why.empty()) {
    Append(reasons, why);
  }
  return reasons;
}

std::string Engine::An1CannotRun(const ValidatedAttention& problem) const {
  for (const auto& site : sites_) {
    if (site->an1) return site->an1->UnsupportedAttention(problem);
  }
  return "";
}

StatusOr<PreparedRequest> Engine::PrepareAttention(const AttentionInputs& inputs,
                                                   BackendKind requested) const {
  StatusOr<ValidatedAttention> problem = ValidateAttention(inputs, options_.limits);
  if (!problem.ok()) return problem.status();
  BackendChoiceFacts facts{requested, options_.default_policy,
                           An1UnavailableReason(OpKind::kAttention), ""};
  if (facts.an1_unavailable.empty()) facts.an1_cannot_run = An1CannotRun(*problem);
  StatusOr<BackendChoice> choice = ChooseBackend(facts);
  if (!choice.ok()) return choice.status();

  PreparedRequest request;
  request.op = OpKind::kAttention;
  request.choice = std::move(choice).value();
  request.output = problem->output;
  request.inputs = {inputs.q, inputs.k, inputs.v};
  request.tokens = static_cast<uint64_t>(problem->dims.batch * problem->dims.q_len);  // B * Sq
  const AttentionDims& d = problem->dims;
  request.work = 4.0 * double(d.batch) * double(d.heads) * double(d.q_len) * double(d.kv_len) *
                 double(d.head_dim);
  request.extra_output_bytes = inputs.lse.size_bytes();
  request.run = [problem = std::move(problem).value(), inputs](
                    Backend& backend, const ExecutionContext& context, std::span<std::byte> output,
                    ExecutionTimes* times) {
    return backend.Attention(problem, inputs, output, context, times);
  };
  return request;
}

StatusOr<PreparedRequest> Engine::PreparePagedAttention(const PagedAttentionInputs& inputs,
                                                        BackendKind requested) const {
  StatusOr<ValidatedPagedAttention> problem = ValidatePagedAttention(inputs, options_.limits);
  if (!problem.ok()) return problem.status();
  BackendChoiceFacts facts{requested, options_.default_policy,
                           An1UnavailableReason(OpKind::kPagedAttention), ""};
  if (facts.an1_unavailable.empty()) {
    for (const auto& site : sites_) {
      if (!site->an1) continue;
      facts.an1_cannot_run = site->an1->UnsupportedPagedAttention(*problem);
      break;
    }
  }
  StatusOr<BackendChoice> choice = ChooseBackend(facts);
  if (!choice.ok()) return choice.status();
  // The backend chosen must implement it on some device; the GPU backends do not yet.
  std::string cannot;
  for (const auto& site : sites_) {
    const Backend* backend = site->backend(choice->kind);
    if (backend == nullptr) continue;
    cannot = backend->UnsupportedPagedAttention(*problem);
    if (cannot.empty()) break;
  }
  if (!cannot.empty()) {
    return UnimplementedError("backend " + std::string(BackendKindName(choice->kind)) +
                              " cannot run this request: " + cannot);
  }

  PreparedRequest request;
  request.op = OpKind::kPagedAttention;
  request.choice = std::move(choice).value();
  request.output = problem->output;
  request.inputs = {inputs.q,       inputs.cu_seqlens_q, inputs.k_cache,
                    inputs.v_cache, inputs.page_table,   inputs.kv_lens};
  if (inputs.k_new) {
    request.inputs.push_back(*inputs.k_new);
    request.inputs.push_back(*inputs.v_new);
  }
  request.tokens = static_cast<uint64_t>(problem->dims.total_q);
  request.extra_output_bytes = inputs.lse.size_bytes();
  request.run = [problem = std::move(problem).value(), inputs](
                    Backend& backend, const ExecutionContext& context, std::span<std::byte> output,
                    ExecutionTimes* times) -> Status {
    // The index tensors are read only now: a region's bytes arrive just before the run.
    StatusOr<std::vector<PagedSequence>> sequences = ValidatePagedIndices(problem, inputs);
    if (!sequences.ok()) return sequences.status();
    return backend.PagedAttention(problem, *sequences, inputs, output, context, times);
  };
  return request;
}

StatusOr<PreparedRequest> Engine::PrepareMatmul(const TensorView& a, const TensorView& b,
                                                BackendKind requested, bool allow_tf32) const {
  StatusOr<ValidatedMatmul> problem = ValidateMatmul(a, b, options_.limits);
  if (!problem.ok()) return problem.status();
  problem->allow_tf32 = allow_tf32;
  StatusOr<BackendChoice> choice = ChooseBackend(
      {requested, options_.default_policy, An1UnavailableReason(OpKind::kMatmul), ""});
  if (!choice.ok()) return choice.status();

  PreparedRequest request;
  request.op = OpKind::kMatmul;
  request.choice = std::move(choice).value();
  request.output = problem->output;
  request.inputs = {a, b};
  request.tokens = OutputRows(problem->output);  // rows of the output over every batch
  double outputs = 1;
  for (int64_t extent : problem->output.shape) outputs *= double(extent);
  request.work = 2.0 * outputs * double(problem->dims.k);
  request.run = [problem = std::move(problem).value(), a, b](
                    Backend& backend, const ExecutionContext& context, std::span<std::byte> output,
                    ExecutionTimes* times) {
    return backend.Matmul(problem, a, b, output, context, times);
  };
  return request;
}

Status Engine::Submit(PreparedRequest request, OutputProvider output, RequestControl control,
                      DoneCallback done) {
  // A caller already gone is answered at once: it never takes a queue slot or bytes.
  AN1_RETURN_IF_ERROR(control.StopReason("before the request was admitted"));
  if (draining_.load()) return UnavailableError("the server is shutting down");
  StatusOr<int> device = RequiredDevice(request);
  if (!device.ok()) return device.status();
  // Admission counts only requests someone still waits for.
  DropAbandoned();

  DeviceSite* target = nullptr;
  std::string faults;
  for (const auto& site : sites_) {
    if (site->backend(request.choice.kind) == nullptr) continue;
    if (*device >= 0 && site->device != DeviceId::Cuda(*device)) continue;
    if (!site->healthy()) {
      Append(faults, site->device.ToString() + ": " + site->fault());
      continue;
    }
    if (target == nullptr || site->queue->load() < target->queue->load()) target = site.get();
  }
  if (target == nullptr && *device >= 0 && faults.empty()) {
    return FailedPreconditionError("the request's tensors are on GPU " + std::to_string(*device) +
                                   ", which this server does not serve " +
                                   std::string(BackendKindName(request.choice.kind)) + " on");
  }
  if (target == nullptr) {
    return UnavailableError("no device can run this request: every GPU is out of service (" +
                            faults + ")");
  }

  // A request that could not finish before its deadline even at the fastest rate this device has
  // shown, after the work queued ahead of it on the device, is refused now, not run until the
  // deadline cuts it off (holding a worker meanwhile). The queue ahead is shared by the device's
  // executors: its estimated seconds count divided among them.
  if (control.deadline != Clock::time_point::max()) {
    const std::optional<double> estimate =
        target->cost.Estimate(request.choice.kind, request.op, request.work);
    const double ahead = target->queue->WaitingSeconds([&](const Job& job) {
      return target->cost.Estimate(job.request.choice.kind, job.request.op, job.request.work)
          .value_or(0.0);
    }) / std::max(1, target->queue->executors());
    const double left = SecondsBetween(Clock::now(), control.deadline);
    if ((estimate || ahead > 0) && estimate.value_or(0.0) + ahead > left) {
      const auto ms = [](double seconds) {
        return std::to_string(static_cast<int64_t>(seconds * 1e3));
      };
      return DeadlineExceededError(
          "the request needs about " +
          (estimate ? ms(*estimate) : std::string("an unknown number of")) + " ms of compute on " +
          target->device.ToString() + " (" + std::string(BackendKindName(request.choice.kind)) +
          ", at the fastest rate it has shown) after about " + ms(ahead) +
          " ms of work queued ahead of it there; its deadline leaves " + ms(left) + " ms");
    }
  }

  Job job;
  job.bytes = request.output.byte_size + request.extra_output_bytes;
  for (const TensorView& input : request.inputs) job.bytes += input.data.size();
  {
    std::lock_guard lock(bytes_mutex_);
    if (inflight_bytes_ + job.bytes > options_.max_inflight_bytes && inflight_bytes_ > 0) {
      return ResourceExhaustedError(
          "too many tensor bytes in flight (" + std::to_string(inflight_bytes_ >> 20) +
          " MiB admitted, limit " + std::to_string(options_.max_inflight_bytes >> 20) +
          " MiB); retry later");
    }
    inflight_bytes_ += job.bytes;
  }
  job.request = std::move(request);
  job.output = std::move(output);
  job.control = std::move(control);
  job.done = std::move(done);
  if (Status pushed = target->queue->Push(&job); !pushed.ok()) {
    std::lock_guard lock(bytes_mutex_);
    inflight_bytes_ -= job.bytes;
    return pushed;
  }
  return OkStatus();
}

void Engine::Run(DeviceSite& site, Job& job, int slot) {
  const auto started = Clock::now();
  const PreparedRequest& request = job.request;
  ExecutionReport report = QueuedReport(site, job, started);
  report.output_bytes = request.output.byte_size;
  report.tokens = request.tokens;

  Status status = job.control.StopReason("while the request waited in the queue");
  if (status.ok()) {
    report.executed = true;
    ExecutionTimes times;
    const RequestControl& control = job.control;
    ExecutionContext context{slot, request.output_device,
                             [&control] { return control.StopReason("during the computation"); }};
    const uint64_t energy_token = site.energy ? site.energy->Begin(started) : 0;
    try {
      StatusOr<std::span<std::byte>> out = job.output(request.output);
      if (!out.ok()) {
        status = out.status();
      } else if (out->size() != request.output.byte_size) {
        status = InvalidArgumentError("output buffer has " + std::to_string(out->size()) +
                                      " bytes, the result needs " +
                                      std::to_string(request.output.byte_size));
      } else {
        status = request.run(*site.backend(request.choice.kind), context, *out, &times);
      }
    } catch (const std::bad_alloc&) {
      status = ResourceExhaustedError("out of host memory");
    } catch (const std::exception& e) {
      spdlog::error("request failed with an exception: {}", e.what());
      status = InternalError("internal error");
    } catch (...) {
      spdlog::error("request failed with an unknown exception");
      status = InternalError("internal error");
    }
    report.compute_seconds =
        times.compute_seconds >= 0 ? times.compute_seconds : SecondsBetween(started, Clock::now());
    report.copy_seconds = times.copy_seconds;
    report.copied_bytes = times.copied_bytes;
    report.kernel = std::move(times.kernel);
    if (status.ok()) {
      site.cost.Record(request.choice.kind, request.op, request.work, report.compute_seconds);
    }
    if (site.energy) report.energy_joules = site.energy->End(energy_token);
    if (!site.healthy()) NotifyHealth();
  }
  {
    std::lock_guard lock(bytes_mutex_);
    inflight_bytes_ -= job.bytes;
  }
  RunDone(job.done, status, report);
}

void Engine::FinishUnexecuted(const DeviceSite& site, Job& job) {
  {
    std::lock_guard lock(bytes_mutex_);
    inflight_bytes_ -= job.bytes;
  }
  const ExecutionReport report = QueuedReport(site, job, Clock::now());
  Status status = job.control.StopReason("while the request waited in the queue");
  if (status.ok()) status = UnavailableError("the server is shutting down");
  RunDone(job.done, status, report);
}

void Engine::DropAbandoned() {
  for (auto& site : sites_) {
    for (Job& job : site->queue->TakeAbandoned()) FinishUnexecuted(*site, job);
  }
}

void Engine::Withdraw(const RequestControl& control) {
  if (!control.cancelled) return;
  control.cancelled->store(true);
  for (auto& site : sites_) {
    if (std::optional<Job> job = site->queue->Withdraw(control.cancelled)) {
      FinishUnexecuted(*site, *job);
      return;
    }
  }
}

void Engine::Drain() {
  draining_.store(true);
  for (auto& site : sites_) site->queue->Drain();
}

}  // namespace an1
