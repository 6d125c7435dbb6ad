#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

namespace an1::server {
namespace {

constexpr const char* kServiceName = "an1.v1.An1";

void SetHealth(grpc::Server& server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);  // overall ("") and every service
  health->SetServingStatus(kServiceName, serving);
}

}  // namespace

StatusOr<std::unique_ptr<An1Server>> An1Server::Start(const ServerOptions& options) {
  if (options.max_message_bytes < 1024) {
    return InvalidArgumentError("max_message_bytes must be at least 1024");
  }
  std::unique_ptr<An1Server> server(new An1Server());
  StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options.engine);
  if (!engine.ok()) return engine.status();
  server->engine_ = std::move(engine).value();
  server->metrics_ = std::make_unique<ServerMetrics>(server->engine_.get());
  if (!options.metrics_listen.empty()) {
    StatusOr<int> port = server->metrics_->StartExposer(options.metrics_listen);
    if (!port.ok()) return port.status();
    server->metrics_port_ = *port;
  }
  server->regions_ = std::make_unique<RegionRegistry>(options.shared_memory, server->engine_.get());
  server->service_ = std::make_unique<An1Service>(CallEnvironment{
      server->engine_.get(), server->metrics_.get(), server->regions_.get(),
      static_cast<uint64_t>(options.max_message_bytes), options.engine.limits.max_tensor_bytes});

  static std::once_flag process_setup;
  std::call_once(process_setup, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &server->port_);
  // Refuse to share the port with another process (gRPC sets SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(server->service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return UnavailableError("cannot listen for gRPC on " + options.listen);
  }
  SetHealth(*server->grpc_server_, server->engine_->Healthy());
  // A device fault that takes the last GPU out of service turns health NOT_SERVING.
  grpc::Server* grpc_server = server->grpc_server_.get();
  server->engine_->SetHealthListener(
      [grpc_server](bool healthy) { SetHealth(*grpc_server, healthy); });
  return server;
}

An1Server::~An1Server() { Shutdown(std::chrono::milliseconds(0)); }

void An1Server::Shutdown(std::chrono::milliseconds grace) {
  std::call_once(shutdown_once_, [&] {
    if (engine_ != nullptr) engine_->SetHealthListener(nullptr);
    if (grpc_server_ != nullptr) {
      SetHealth(*grpc_server_, false);
      grpc_server_->Shutdown(std::chrono::system_clock::now() + grace);
      grpc_server_->Wait();
    }
    if (engine_ != nullptr) engine_->Drain();
    if (regions_ != nullptr) regions_->Clear();  // every region's descriptor closed
  });
}

}  // namespace an1::server
