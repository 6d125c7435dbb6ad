// The an1.v1.An1 gRPC service on the callback API.
//
// Handlers validate and enqueue, never wait on the engine: an EngineCall reactor per Attention
// or Matmul call carries the request to the engine, whose executor thread finishes the call.
// Thread-safe; everything in the CallEnvironment must outlive the service.
#pragma once

#include "an1/v1/an1.grpc.pb.h"
#include "server/engine_call.h"

namespace an1::server {

class An1Service final : public v1::An1::CallbackService {
 public:
  explicit An1Service(const CallEnvironment& env) : env_(env) {}

  grpc::ServerUnaryReactor* Attention(grpc::CallbackServerContext* context,
                                      const v1::AttentionRequest* request,
                                      v1::AttentionResponse* response) override;
  grpc::ServerUnaryReactor* Matmul(grpc::CallbackServerContext* context,
                                   const v1::MatmulRequest* request,
                                   v1::MatmulResponse* response) override;
  // paged_attention_service.cc
  grpc::ServerUnaryReactor* PagedAttention(grpc::CallbackServerContext* context,
                                           const v1::PagedAttentionRequest* request,
                                           v1::PagedAttentionResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::GetServerInfoResponse* response) override;
  // A session for region ownership without tokens (sessions.h); needs the shm scope.
  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* context,
                                          const v1::CreateSessionRequest* request,
                                          v1::CreateSessionResponse* response) override;
  grpc::ServerUnaryReactor* RegisterSystemSharedMemory(
      grpc::CallbackServerContext* context, const v1::RegisterSystemSharedMemoryRequest* request,
      v1::RegisterSharedMemoryResponse* response) override;
  grpc::ServerUnaryReactor* RegisterCudaSharedMemory(
      grpc::CallbackServerContext* context, const v1::RegisterCudaSharedMemoryRequest* request,
      v1::RegisterSharedMemoryResponse* response) override;
  grpc::ServerUnaryReactor* UnregisterSharedMemory(
      grpc::CallbackServerContext* context, const v1::UnregisterSharedMemoryRequest* request,
      v1::UnregisterSharedMemoryResponse* response) override;
  grpc::ServerUnaryReactor* ListSharedMemory(grpc::CallbackServerContext* context,
                                             const v1::ListSharedMemoryRequest* request,
                                             v1::ListSharedMemoryResponse* response) override;

 private:
  // Finishes a quick RPC (no engine work) with `status`, recording its metrics.
  // The owner of the caller's regions for a shared memory RPC (shm scope; auth.h).
  StatusOr<std::string> ShmOwner(const grpc::CallbackServerContext& context) const;
  grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const char* rpc,
                                      std::chrono::steady_clock::time_point started,
                                      const Status& status);

  CallEnvironment env_;
};

}  // namespace an1::server
