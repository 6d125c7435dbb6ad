// The an1.v1.An1 gRPC service on the callback API.
//
// Handlers validate and enqueue, never block: a reactor per call carries the request to the
// engine, whose executor thread finishes the call. Thread-safe; the engine and the metrics must
// outlive the service.
#pragma once

#include <cstdint>

#include "an1/v1/an1.grpc.pb.h"
#include "engine/engine.h"
#include "server/metrics.h"

namespace an1::server {

class An1Service final : public v1::An1::CallbackService {
 public:
  An1Service(Engine* engine, ServerMetrics* metrics, uint64_t max_message_bytes);

  grpc::ServerUnaryReactor* Attention(grpc::CallbackServerContext* context,
                                      const v1::AttentionRequest* request,
                                      v1::AttentionResponse* response) override;
  grpc::ServerUnaryReactor* Matmul(grpc::CallbackServerContext* context,
                                   const v1::MatmulRequest* request,
                                   v1::MatmulResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::GetServerInfoResponse* response) override;

 private:
  Engine* engine_;
  ServerMetrics* metrics_;
  uint64_t max_message_bytes_;
};

}  // namespace an1::server
