#include "engine/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <new>

#include "engine/cpu_backend.h"
#include "kernels/cuda_ipc.h"
#include "kernels/nvml_power.h"
#if AN1_HAVE_CUDA
#include "engine/gpu_backend.h"
#endif

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

void Append(std::string& reasons, const std::string& reason) {
  reasons += (reasons.empty() ? "" : "; ") + reason;
}

// The GPU whose memory the request's tensors are in (-1: all host memory). INVALID_ARGUMENT
// when they are on different GPUs.
StatusOr<int> RequiredDevice(std::initializer_list<int> devices) {
  int device = -1;
  for (int d : devices) {
    if (d < 0) continue;
    if (device >= 0 && d != device) {
      return InvalidArgumentError("the request's tensors are on different GPUs (" +
                                  std::to_string(device) + " and " + std::to_string(d) + ")");
    }
    device = d;
  }
  return device;
}

uint64_t OutputRows(const TensorSpec& output) {
  uint64_t rows = 1;
  for (std::size_t i = 0; i + 1 < output.shape.size(); ++i) rows *= output.shape[i];
  return rows;
}

}  // namespace

Status RequestControl::StopReason(std::string_view when) const {
  // When a deadline passes, the client's gRPC cancels the call, and the cancellation can reach
  // the server before the server's own copy of the deadline (which starts when the call arrives,
  // later than the client's): a cancellation this close to the deadline is the deadline's, as the
  // client sees it (DEADLINE_EXCEEDED).
  constexpr auto kDeadlineMargin = std::chrono::milliseconds(50);
  const auto now = std::chrono::steady_clock::now();
  const bool cancelled_now = cancelled && cancelled->load();
  if (now >= deadline || (cancelled_now && deadline - now <= kDeadlineMargin)) {
    return DeadlineExceededError("the deadline passed " + std::string(when));
  }
  if (cancelled_now) return CancelledError("the client cancelled the request " + std::string(when));
  return OkStatus();
}

// A place requests run: the CPU, or one GPU. Its queue and `running` are guarded by the
// engine's mutex.
struct Engine::Site {
  std::string name;
  std::unique_ptr<Backend> baseline;
  std::unique_ptr<Backend> an1;  // null where an1 may not run (no GPU, or not licensed)
#if AN1_HAVE_CUDA
  std::unique_ptr<GpuContext> gpu;
#endif
  // The GPU's power sensor and the energy attribution of its requests; null on the CPU and
  // where NVML is missing (`energy_unavailable` says why).
  std::shared_ptr<kernels::GpuPowerSensor> sensor;
  std::unique_ptr<EnergyMeter> energy;
  std::string energy_unavailable;
  std::deque<Job> queue;
  std::atomic<int> pending{0};  // queue.size(), readable without the lock by polling executors
  int running = 0;
  std::condition_variable work_available;
  std::vector<std::thread> executors;

  bool healthy() const {
#if AN1_HAVE_CUDA
    if (gpu) return gpu->healthy();
#endif
    return true;
  }
  std::string fault() const {
#if AN1_HAVE_CUDA
    if (gpu) return gpu->fault();
#endif
    return "";
  }
  Backend* backend(BackendKind kind) const {
    return kind == BackendKind::kAn1 ? an1.get() : baseline.get();
  }
};

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
#if AN1_HAVE_CUDA
  const std::vector<int>& licensed = license_->licensed_gpus();
  for (const kernels::GpuDevice& device : gpus_.devices) {
    StatusOr<std::unique_ptr<GpuContext>> gpu =
        GpuContext::Create(device.index, options_.streams_per_gpu);
    if (!gpu.ok()) {
      spdlog::error("GPU {} cannot be used: {}", device.index, gpu.status().message());
      Append(gpu_setup_error_, gpu.status().message());
      continue;
    }
    auto site = std::make_unique<Site>();
    site->name = "cuda:" + std::to_string(device.index);
    site->gpu = std::move(gpu).value();
    site->baseline = std::make_unique<GpuBackend>(site->gpu.get(), GpuBackend::Flavor::kBaseline);
    if (std::find(licensed.begin(), licensed.end(), device.index) != licensed.end()) {
      site->an1 = std::make_unique<GpuBackend>(site->gpu.get(), GpuBackend::Flavor::kAn1);
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
      site->energy->StartSampling(std::chrono::milliseconds(options_.energy_sample_ms));
    } else {
      spdlog::warn("GPU {}: no power or energy metrics: {}", device.index,
                   site->energy_unavailable);
    }
    sites_.push_back(std::move(site));
  }
#endif
  if (sites_.empty()) {
    auto site = std::make_unique<Site>();
    site->name = "cpu";
    site->baseline = std::make_unique<CpuBackend>(options_.cpu_threads);
    sites_.push_back(std::move(site));
  }
  for (auto& site : sites_) {
#if AN1_HAVE_CUDA
    const int slots = site->gpu ? site->gpu->slots() : options_.executor_threads;
#else
    const int slots = options_.executor_threads;
#endif
    for (int slot = 0; slot < slots; ++slot) {
      site->executors.emplace_back([this, s = site.get(), slot] { ExecutorLoop(s, slot); });
    }
  }
  return OkStatus();
}

Engine::~Engine() { Drain(); }

std::string Engine::An1UnavailableReason(OpKind op) const {
  std::string reasons;
  const LicenseStatus license = license_->Current();
  if (!license.valid) Append(reasons, "no valid license: " + license.reason);
  std::vector<const Site*> an1_sites;
  for (const auto& site : sites_) {
    if (site->an1) an1_sites.push_back(site.get());
  }
  if (gpus_.devices.empty()) {
    Append(reasons, "no usable GPU (" + gpus_.reason + ")");
  } else if (!kernels::BuiltWithCuda() || (!gpu_setup_error_.empty() && an1_sites.empty() &&
                                           sites_.size() == 1 && sites_[0]->name == "cpu")) {
    Append(reasons, "the GPUs could not be used (" + gpu_setup_error_ + ")");
  } else if (an1_sites.empty()) {
    if (license.valid) Append(reasons, "no GPU on this host is licensed for an1");
  } else if (std::none_of(an1_sites.begin(), an1_sites.end(),
                          [](const Site* s) { return s->healthy(); })) {
    Append(reasons, "every GPU licensed for an1 is out of service");
  } else if (std::string why = an1_sites.front()->an1->Unsupported(op); !why.empty()) {
    Append(reasons, why);
  }
  return reasons;
}

StatusOr<BackendChoice> Engine::Choose(BackendKind requested, OpKind op) const {
  const BackendKind policy = requested == BackendKind::kAuto ? options_.default_policy : requested;
  BackendChoice choice;
  choice.requested = requested;
  choice.kind = BackendKind::kBaseline;
  switch (policy) {
    case BackendKind::kAn1:
    case BackendKind::kAuto: {
      const std::string why = An1UnavailableReason(op);
      if (why.empty()) {
        choice.kind = BackendKind::kAn1;
      } else if (policy == BackendKind::kAn1) {
        // Never a silent fallback: an explicit an1 (request or server policy) fails.
        return FailedPreconditionError("backend an1 is unavailable: " + why);
      } else {
        choice.reason = "an1 is unavailable: " + why;
      }
      return choice;
    }
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
  StatusOr<BackendChoice> choice = Choose(requested, OpKind::kAttention);
  if (!choice.ok()) return choice.status();
  if (choice->kind == BackendKind::kAn1) {
    // an1's kernel covers some problems only (dtype, head_dim): outside them an explicit an1
    // is UNIMPLEMENTED, and auto runs the baseline saying why.
    std::string why;
    for (const auto& site : sites_) {
      if (site->an1) {
        why = site->an1->UnsupportedAttention(*problem);
        break;
      }
    }
    if (!why.empty()) {
      const bool explicit_an1 =
          requested == BackendKind::kAn1 ||
          (requested == BackendKind::kAuto && options_.default_policy == BackendKind::kAn1);
      if (explicit_an1) return UnimplementedError("backend an1 cannot run this request: " + why);
      choice->kind = BackendKind::kBaseline;
      choice->reason = "an1 cannot run this request: " + why;
    }
  }
  return PreparedAttention{inputs, std::move(problem).value(), std::move(choice).value()};
}

StatusOr<PreparedMatmul> Engine::PrepareMatmul(const TensorView& a, const TensorView& b,
                                               BackendKind requested, bool allow_tf32) const {
  StatusOr<ValidatedMatmul> problem = ValidateMatmul(a, b, options_.limits);
  if (!problem.ok()) return problem.status();
  problem->allow_tf32 = allow_tf32;
  StatusOr<BackendChoice> choice = Choose(requested, OpKind::kMatmul);
  if (!choice.ok()) return choice.status();
  return PreparedMatmul{a, b, std::move(problem).value(), std::move(choice).value()};
}

Status Engine::Submit(PreparedAttention request, OutputProvider output, RequestControl control,
                      DoneCallback done) {
  auto shared = std::make_shared<PreparedAttention>(std::move(request));
  const TensorSpec& spec = shared->problem.output;
  StatusOr<int> device = RequiredDevice({shared->inputs.q.device, shared->inputs.k.device,
                                         shared->inputs.v.device, shared->output_device});
  if (!device.ok()) return device.status();
  Job job{shared->choice,
          OpKind::kAttention,
          shared->inputs.q.data.size() + shared->inputs.k.data.size() +
              shared->inputs.v.data.size() + spec.byte_size,
          *device,
          spec,
          std::move(output),
          shared->output_device,
          [shared](Backend& backend, const ExecutionContext& context, std::span<std::byte> out,
                   ExecutionTimes* times) {
            return backend.Attention(shared->problem, shared->inputs, out, context, times);
          },
          std::move(control),
          std::move(done),
          {},
          // Tokens: query rows of every sequence, B * Sq.
          static_cast<uint64_t>(shared->problem.dims.batch * shared->problem.dims.q_len)};
  return Enqueue(std::move(job));
}

Status Engine::Submit(PreparedMatmul request, OutputProvider output, RequestControl control,
                      DoneCallback done) {
  auto shared = std::make_shared<PreparedMatmul>(std::move(request));
  const TensorSpec& spec = shared->problem.output;
  StatusOr<int> device =
      RequiredDevice({shared->a.device, shared->b.device, shared->output_device});
  if (!device.ok()) return device.status();
  Job job{shared->choice,
          OpKind::kMatmul,
          shared->a.data.size() + shared->b.data.size() + spec.byte_size,
          *device,
          spec,
          std::move(output),
          shared->output_device,
          [shared](Backend& backend, const ExecutionContext& context, std::span<std::byte> out,
                   ExecutionTimes* times) {
            return backend.Matmul(shared->problem, shared->a, shared->b, out, context, times);
          },
          std::move(control),
          std::move(done),
          {},
          // Tokens: rows of the output over every batch (all output dimensions but n).
          OutputRows(spec)};
  return Enqueue(std::move(job));
}

Status Engine::Enqueue(Job job) {
  // A caller already gone is answered at once: it never takes a queue slot or bytes.
  AN1_RETURN_IF_ERROR(job.control.StopReason("before the request was admitted"));
  Site* target = nullptr;
  std::vector<Job> abandoned;
  // Requests whose caller left are answered after the lock is released, however this ends.
  struct FinishAbandoned {
    std::vector<Job>& jobs;
    ~FinishAbandoned() {
      for (Job& job : jobs) FinishUnexecuted(*job.site, job);
    }
  } finish_abandoned{abandoned};
  {
    std::lock_guard lock(mutex_);
    if (draining_) return UnavailableError("the server is shutting down");
    // Admission counts only requests someone still waits for.
    TakeAbandonedLocked(&abandoned);
    std::string faults;
    for (const auto& site : sites_) {
      if (site->backend(job.choice.kind) == nullptr) continue;
      if (job.device >= 0 && site->name != "cuda:" + std::to_string(job.device)) continue;
      if (!site->healthy()) {
        Append(faults, site->name + ": " + site->fault());
        continue;
      }
      auto load = [](const Site* s) { return s->queue.size() + s->running; };
      if (target == nullptr || load(site.get()) < load(target)) target = site.get();
    }
    if (target == nullptr && job.device >= 0 && faults.empty()) {
      return FailedPreconditionError("the request's tensors are on GPU " +
                                     std::to_string(job.device) + ", which this server does not " +
                                     "serve " + std::string(BackendKindName(job.choice.kind)) +
                                     " on");
    }
    if (target == nullptr) {
      return UnavailableError("no device can run this request: every GPU is out of service (" +
                              faults + ")");
    }
    if (static_cast<int>(target->queue.size()) >= options_.max_queue_depth) {
      return ResourceExhaustedError("the request queue of " + target->name + " is full (" +
                                    std::to_string(options_.max_queue_depth) +
                                    " waiting); retry later");
    }
    if (inflight_bytes_ + job.bytes > options_.max_inflight_bytes && inflight_bytes_ > 0) {
      return ResourceExhaustedError(
          "too many tensor bytes in flight (" + std::to_string(inflight_bytes_ >> 20) +
          " MiB admitted, limit " + std::to_string(options_.max_inflight_bytes >> 20) +
          " MiB); retry later");
    }
    inflight_bytes_ += job.bytes;
    job.admitted = std::chrono::steady_clock::now();
    job.site = target;
    target->queue.push_back(std::move(job));
    target->pending.fetch_add(1, std::memory_order_release);
  }
  target->work_available.notify_one();
  return OkStatus();
}

void Engine::TakeAbandonedLocked(std::vector<Job>* abandoned) {
  for (auto& site : sites_) {
    auto gone = [](const Job& job) { return !job.control.StopReason("").ok(); };
    for (auto it = site->queue.begin(); it != site->queue.end();) {
      if (!gone(*it)) {
        ++it;
        continue;
      }
      inflight_bytes_ -= it->bytes;
      abandoned->push_back(std::move(*it));
      it = site->queue.erase(it);
      site->pending.fetch_sub(1, std::memory_order_relaxed);
    }
  }
}

void Engine::FinishUnexecuted(const Site& site, Job& job) {
  ExecutionReport report;
  report.executed = false;
  report.backend = job.choice.kind;
  report.requested = job.choice.requested;
  report.reason = job.choice.reason;
  report.device = site.name;
  report.queue_seconds = SecondsBetween(job.admitted, std::chrono::steady_clock::now());
  Status status = job.control.StopReason("while the request waited in the queue");
  if (status.ok()) status = UnavailableError("the server is shutting down");
  try {
    job.done(status, report);
  } catch (const std::exception& e) {  // a completion that throws must not end the process
    spdlog::error("a request's completion failed: {}", e.what());
  } catch (...) {
    spdlog::error("a request's completion failed");
  }
}

void Engine::Withdraw(const RequestControl& control) {
  if (!control.cancelled) return;
  control.cancelled->store(true);
  std::optional<Job> withdrawn;
  {
    std::lock_guard lock(mutex_);
    for (auto& site : sites_) {
      auto it = std::find_if(site->queue.begin(), site->queue.end(), [&](const Job& job) {
        return job.control.cancelled == control.cancelled;
      });
      if (it == site->queue.end()) continue;
      inflight_bytes_ -= it->bytes;
      withdrawn.emplace(std::move(*it));
      site->queue.erase(it);
      site->pending.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
  }
  if (withdrawn) FinishUnexecuted(*withdrawn->site, *withdrawn);
}

void Engine::ExecutorLoop(Site* site, int slot) {
  // GPU executors poll for new work for a short while before they sleep: waking a sleeping
  // thread costs tens of microseconds, which is the service overhead of a CUDA IPC request.
  const auto spin = site->name == "cpu" ? std::chrono::microseconds(0)
                                        : std::chrono::microseconds(options_.executor_spin_us);
  for (;;) {
    Job job;
    const auto spin_until = std::chrono::steady_clock::now() + spin;
    while (site->pending.load(std::memory_order_acquire) == 0 &&
           std::chrono::steady_clock::now() < spin_until) {
      std::this_thread::yield();
    }
    {
      std::unique_lock lock(mutex_);
      site->work_available.wait(lock, [&] { return draining_ || !site->queue.empty(); });
      if (site->queue.empty()) return;  // draining and nothing left
      job = std::move(site->queue.front());
      site->queue.pop_front();
      site->pending.fetch_sub(1, std::memory_order_relaxed);
      ++site->running;
      running_.fetch_add(1);
    }
    Run(*site, slot, job);
    {
      std::lock_guard lock(mutex_);
      --site->running;
      inflight_bytes_ -= job.bytes;
    }
    running_.fetch_sub(1);
  }
}

void Engine::Run(Site& site, int slot, Job& job) {
  const auto started = std::chrono::steady_clock::now();
  ExecutionReport report;
  report.backend = job.choice.kind;
  report.requested = job.choice.requested;
  report.reason = job.choice.reason;
  report.device = site.name;
  report.queue_seconds = SecondsBetween(job.admitted, started);
  report.output_bytes = job.output_spec.byte_size;
  report.tokens = job.tokens;

  Status status = job.control.StopReason("while the request waited in the queue");
  if (status.ok()) {
    report.executed = true;
    ExecutionTimes times;
    const RequestControl& control = job.control;
    ExecutionContext context{slot, job.output_device,
                             [&control] { return control.StopReason("during the computation"); }};
    const uint64_t energy_token = site.energy ? site.energy->Begin(started) : 0;
    try {
      StatusOr<std::span<std::byte>> out = job.output(job.output_spec);
      if (!out.ok()) {
        status = out.status();
      } else if (out->size() != job.output_spec.byte_size) {
        status = CheckOutputSize(*out, job.output_spec);
      } else {
        status = job.compute(*site.backend(job.choice.kind), context, *out, &times);
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
    report.compute_seconds = times.compute_seconds >= 0
                                 ? times.compute_seconds
                                 : SecondsBetween(started, std::chrono::steady_clock::now());
    report.copy_seconds = times.copy_seconds;
    report.copied_bytes = times.copied_bytes;
    if (site.energy) report.energy_joules = site.energy->End(energy_token);
    if (!site.healthy()) NotifyHealth();
  }
  try {
    job.done(status, report);
  } catch (const std::exception& e) {  // a completion that throws must not end the process
    spdlog::error("a request's completion failed: {}", e.what());
  } catch (...) {
    spdlog::error("a request's completion failed");
  }
}

std::vector<GpuEnergyReading> Engine::ReadGpuEnergy() const {
  std::vector<GpuEnergyReading> readings;
  for (const auto& site : sites_) {
    if (site->name == "cpu") continue;
    GpuEnergyReading reading;
    reading.device = site->name;
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

void Engine::Drain() {
  std::lock_guard drain_lock(drain_mutex_);  // concurrent callers wait for the first to finish
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
  }
  for (auto& site : sites_) {
    site->work_available.notify_all();
    for (std::thread& t : site->executors) {
      if (t.joinable()) t.join();
    }
    site->executors.clear();
  }
}

bool Engine::Healthy() const {
  return std::any_of(sites_.begin(), sites_.end(), [](const auto& s) { return s->healthy(); });
}

void Engine::SetHealthListener(std::function<void(bool healthy)> listener) {
  std::lock_guard lock(mutex_);
  health_listener_ = std::move(listener);
}

void Engine::NotifyHealth() {
  const bool healthy = Healthy();
  std::function<void(bool)> listener;
  {
    std::lock_guard lock(mutex_);
    if (healthy == last_health_) return;
    last_health_ = healthy;
    listener = health_listener_;
  }
  if (listener) listener(healthy);
}

IpcMemory::~IpcMemory() { kernels::CloseCudaIpcMemory(device_, data_); }

StatusOr<std::shared_ptr<IpcMemory>> Engine::OpenCudaIpcMemory(int device,
                                                               std::string_view handle) {
  if (handle.size() != kernels::kCudaIpcHandleBytes) {
    return InvalidArgumentError("a CUDA IPC handle has " +
                                std::to_string(kernels::kCudaIpcHandleBytes) + " bytes, not " +
                                std::to_string(handle.size()));
  }
  const bool served = std::any_of(sites_.begin(), sites_.end(), [&](const auto& site) {
    return site->name == "cuda:" + std::to_string(device) && site->healthy();
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
#if AN1_HAVE_CUDA
  for (auto& site : sites_) {
    if (site->gpu && site->gpu->index() == index) {
      site->gpu->InjectFaultForTesting();
      NotifyHealth();
      return OkStatus();
    }
  }
#endif
  return NotFoundError("no GPU " + std::to_string(index) + " in use");
}

int Engine::queue_depth() const {
  std::lock_guard lock(mutex_);
  int depth = 0;
  for (const auto& site : sites_) depth += static_cast<int>(site->queue.size());
  return depth;
}

EngineInfo Engine::Info() const {
  EngineInfo info;
  info.gpu_mode = sites_.front()->name != "cpu";
  if (!info.gpu_mode) {
    info.mode_reason =
        "serving on the CPU: " + (gpus_.devices.empty()
                                      ? gpus_.reason
                                      : "the GPUs could not be used (" + gpu_setup_error_ + ")");
  }
  info.devices = gpus_.devices;
  for (const auto& site : sites_)
    info.device_status.push_back({site->name, site->healthy(), site->fault()});
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
