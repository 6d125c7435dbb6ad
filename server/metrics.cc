#include "server/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <algorithm>
#include <exception>

#include "server/version.h"

namespace an1::server {
namespace {

// Latency buckets from 100 us (small CPU or GPU calls) to 60 s (large CPU attention).
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return kBuckets;
}

// Reads the engine's queue depth and running requests when Prometheus scrapes.
class EngineCollector : public prometheus::Collectable {
 public:
  explicit EngineCollector(const Engine* engine) : engine_(engine) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    if (engine_ == nullptr) return {};
    // Read at scrape time, so that a license expiring while the server runs shows at once.
    const EngineInfo info = engine_->Info();
    const LicenseStatus& license = info.license;
    prometheus::MetricFamily healthy{"an1_device_healthy",
                                     "1 while the device serves requests, 0 once a fault took it "
                                     "out of service.",
                                     prometheus::MetricType::Gauge,
                                     {}};
    for (const DeviceStatus& device : info.device_status) {
      prometheus::ClientMetric metric;
      metric.label = {{"device", device.device.ToString()}};
      metric.gauge.value = device.healthy ? 1 : 0;
      healthy.metric.push_back(metric);
    }
    // GPU power and energy, read from NVML at scrape time (the counter is the driver's, so the
    // scrape interval does not change it; rate() over it gives the average power).
    const std::vector<GpuEnergyReading> readings = engine_->ReadGpuEnergy();
    prometheus::MetricFamily power{"an1_gpu_power_watts",
                                   "Board power of the GPU (NVML's one-second average).",
                                   prometheus::MetricType::Gauge,
                                   {}};
    prometheus::MetricFamily energy{"an1_gpu_energy_joules_total",
                                    "Energy the GPU drew since the server started (NVML counter).",
                                    prometheus::MetricType::Counter,
                                    {}};
    bool available = !readings.empty();
    for (const GpuEnergyReading& reading : readings) {
      if (!reading.joules || !reading.watts) available = false;
      if (!reading.joules) continue;
      prometheus::ClientMetric metric;
      metric.label = {{"device", reading.device.ToString()}};
      metric.counter.value = *reading.joules;
      energy.metric.push_back(metric);
      if (reading.watts) {
        metric.gauge.value = *reading.watts;
        power.metric.push_back(metric);
      }
    }
    return {
        healthy,
        power,
        energy,
        Gauge("an1_gpu_metrics_available",
              "1 when every GPU reports power and energy through NVML, else 0 (no GPU, no NVML, "
              "or unsupported); requests run the same either way.",
              available ? 1 : 0),
        Gauge("an1_queue_capacity", "Requests that may wait, over all devices.",
              static_cast<double>(info.max_queue_depth) *
                  static_cast<double>(std::max<std::size_t>(1, info.device_status.size()))),
        Gauge("an1_queue_depth", "Requests admitted and waiting to run.", engine_->queue_depth()),
        Gauge("an1_requests_running", "Requests executing on a backend now.", engine_->running()),
        Gauge("an1_license_valid", "1 when a valid license unlocks the an1 backend, else 0.",
              license.valid ? 1 : 0),
        Gauge("an1_license_expiry_timestamp_seconds",
              "Unix time the license expires (0 when no license verified).",
              license.claims ? static_cast<double>(license.claims->expires_at) : 0)};
  }

 private:
  static prometheus::MetricFamily Gauge(const char* name, const char* help, double value) {
    prometheus::ClientMetric metric;
    metric.gauge.value = value;
    return {name, help, prometheus::MetricType::Gauge, {metric}};
  }
  const Engine* engine_;
};

}  // namespace

ServerMetrics::ServerMetrics(const Engine* engine)
    : registry_(std::make_shared<prometheus::Registry>()),
      engine_collector_(std::make_shared<EngineCollector>(engine)),
      requests_(
          prometheus::BuildCounter()
              .Name("an1_requests_total")
              .Help("Finished RPCs by rpc, backend and the gRPC status code the client received; "
                    "backend is the one that ran the request, or none when none ran (refused, "
                    "or dropped from the queue because its caller left or its deadline "
                    "passed).")
              .Register(*registry_)),
      request_seconds_(
          prometheus::BuildHistogram()
              .Name("an1_request_duration_seconds")
              .Help("Server-side RPC latency by rpc, backend (none when none ran) and the "
                    "status code the client received.")
              .Register(*registry_)),
      queue_seconds_(prometheus::BuildHistogram()
                         .Name("an1_queue_duration_seconds")
                         .Help("Time executed requests waited in the engine queue.")
                         .Register(*registry_)),
      compute_seconds_(prometheus::BuildHistogram()
                           .Name("an1_compute_duration_seconds")
                           .Help("Time executed requests spent computing.")
                           .Register(*registry_)),
      rejected_(
          prometheus::BuildCounter()
              .Name("an1_requests_rejected_total")
              .Help("Requests that never ran on a backend, by reason: the status code the client "
                    "received, in lower case (refused at arrival, or dropped from the queue "
                    "as cancelled or deadline_exceeded).")
              .Register(*registry_)),
      bytes_(prometheus::BuildCounter()
                 .Name("an1_tensor_bytes_total")
                 .Help("Tensor bytes moved, by transport and direction.")
                 .Register(*registry_)),
      request_energy_(prometheus::BuildCounter()
                          .Name("an1_request_energy_joules_total")
                          .Help("GPU energy attributed to executed requests (each request's share "
                                "of the energy counter while it ran), by rpc and backend.")
                          .Register(*registry_)),
      tokens_(
          prometheus::BuildCounter()
              .Name("an1_tokens_total")
              .Help("Tokens of requests executed successfully (attention: batch x query length; "
                    "matmul: output rows), by rpc and backend.")
              .Register(*registry_)),
      kernel_runs_(
          prometheus::BuildCounter()
              .Name("an1_kernel_runs_total")
              .Help("Executed requests by rpc, backend and the kernel that ran them (as "
                    "ExecutionInfo.kernel: an1.fwd.sm90, an1.fwd.sm80, an1.decode.splitkv/N, "
                    "baseline.gpu.unfused, baseline.cpu, cublaslt.tuned, cublaslt.heuristic; none "
                    "when the backend refused the request before choosing one).")
              .Register(*registry_)),
      in_flight_(&prometheus::BuildGauge()
                      .Name("an1_requests_in_flight")
                      .Help("Attention and Matmul RPCs between arrival and reply.")
                      .Register(*registry_)
                      .Add({})) {
  prometheus::BuildGauge()
      .Name("an1_build_info")
      .Help("Build of the running server; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", kVersion}, {"build", kBuildDescription}})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

StatusOr<int> ServerMetrics::StartExposer(const std::string& listen) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return UnavailableError("cannot serve metrics on " + listen + ": " + e.what());
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(engine_collector_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) return UnavailableError("metrics server on " + listen + " bound no port");
  return ports.front();
}

void ServerMetrics::RecordRequest(const std::string& rpc, const std::string& backend,
                                  const std::string& code, double seconds) {
  const prometheus::Labels labels{{"rpc", rpc}, {"backend", backend}, {"code", code}};
  requests_.Add(labels).Increment();
  request_seconds_.Add(labels, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::RecordExecution(const std::string& rpc, const std::string& backend,
                                    const ExecutionReport& report, bool succeeded) {
  const prometheus::Labels labels{{"rpc", rpc}, {"backend", backend}};
  queue_seconds_.Add(labels, LatencyBuckets()).Observe(report.queue_seconds);
  compute_seconds_.Add(labels, LatencyBuckets()).Observe(report.compute_seconds);
  if (succeeded) tokens_.Add(labels).Increment(static_cast<double>(report.tokens));
  kernel_runs_
      .Add({{"rpc", rpc},
            {"backend", backend},
            {"kernel", report.kernel.empty() ? "none" : report.kernel}})
      .Increment();
  if (report.energy_joules) request_energy_.Add(labels).Increment(*report.energy_joules);
}

void ServerMetrics::RecordRejection(const std::string& reason) {
  rejected_.Add({{"reason", reason}}).Increment();
}

void ServerMetrics::RecordBytes(const std::string& transport, const std::string& direction,
                                double bytes) {
  bytes_.Add({{"transport", transport}, {"direction", direction}}).Increment(bytes);
}

}  // namespace an1::server
