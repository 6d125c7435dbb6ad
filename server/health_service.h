// The grpc.health.v1.Health service of an1d (Check and Watch), in place of gRPC's default one,
// whose Watch streams never end: the server's Shutdown waits for every call, so each open Watch
// (as Envoy or client-side health checking keep) held a stop for its whole grace period.
//
// Services: "" (the server as a whole) and "an1.v1.An1" share one status; any other name is
// NOT_FOUND for Check and SERVICE_UNKNOWN for Watch (the protocol's rules).
//
// Thread-safety: every method may be called from any thread. After Shutdown the status stays
// NOT_SERVING, every Watch stream gets NOT_SERVING and is finished, and new Watch calls end at
// once.
#pragma once

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <set>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace an1::server {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  // Sets the status of every served name and tells every Watch stream.
  void SetServing(bool serving);
  // NOT_SERVING for good, and every Watch stream finished (the drain calls it first).
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

  class Watcher;  // one open Watch stream (health_service.cc)

 private:
  friend class Watcher;
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  static bool Known(const std::string& service);

  std::recursive_mutex mutex_;  // recursive: a reaction may run inside StartWrite
  bool serving_ = false;
  bool shut_down_ = false;
  std::set<Watcher*> watchers_;  // registered while their stream is open
};

}  // namespace an1::server
