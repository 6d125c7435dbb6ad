// Prometheus metrics of the server, exposed over HTTP at /metrics.
//
// Names follow Prometheus conventions with the an1_ prefix (docs/ARCHITECTURE.md, "Contracts"). All
// Record* methods are thread-safe and cheap (a hash lookup under the family's lock plus an atomic
// update).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "engine/engine.h"

namespace an1::server {

class ServerMetrics {
 public:
  // `engine` (not owned, may be null) supplies queue depth and running requests at scrape time.
  explicit ServerMetrics(const Engine* engine);
  ~ServerMetrics();

  // Serves /metrics on `listen` ("host:port", port 0 picks a free one). Returns the bound port,
  // or UNAVAILABLE with the reason when the address cannot be bound.
  StatusOr<int> StartExposer(const std::string& listen);

  // One finished RPC: `backend` is "an1", "baseline" or "none" (refused before one was chosen),
  // `code` a gRPC status name such as "OK" or "INVALID_ARGUMENT".
  void RecordRequest(const std::string& rpc, const std::string& backend, const std::string& code,
                     double seconds);
  // An executed request: time it waited in the queue and computed, its energy, the kernel that
  // ran it (report.kernel, "none" when none was chosen), and its tokens when it succeeded.
  void RecordExecution(const std::string& rpc, const std::string& backend,
                       const ExecutionReport& report, bool succeeded);
  // A request refused before execution: "queue_full", "invalid", "unavailable", ...
  void RecordRejection(const std::string& reason);
  // Tensor bytes received or sent, by transport ("inline" for now).
  void RecordBytes(const std::string& transport, const std::string& direction, double bytes);

  prometheus::Gauge& in_flight() { return *in_flight_; }
  std::shared_ptr<prometheus::Registry> registry() { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> engine_collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  prometheus::Family<prometheus::Histogram>& queue_seconds_;
  prometheus::Family<prometheus::Histogram>& compute_seconds_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Family<prometheus::Counter>& request_energy_;
  prometheus::Family<prometheus::Counter>& tokens_;
  prometheus::Family<prometheus::Counter>& kernel_runs_;
  prometheus::Gauge* in_flight_;
};

}  // namespace an1::server
