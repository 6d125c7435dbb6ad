#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>

#include "server/unparsed_request.h"

namespace an1::server {

StatusOr<std::unique_ptr<An1Server>> An1Server::Start(const ServerOptions& options) {
  if (options.max_message_bytes < 1024) {
    return InvalidArgumentError("max_message_bytes must be at least 1024");
  }
  StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
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
  // A session outlives its regions' idle expiry (at least an hour): a client quiet for a while
  // keeps its session, and its regions until they expire on their own. 0: sessions never expire.
  const int idle = options.shared_memory.idle_expiry_seconds;
  server->sessions_ =
      std::make_unique<SessionRegistry>(std::chrono::seconds(idle <= 0 ? 0 : std::max(idle, 3600)));
  if (options.shared_memory.enabled) {
    server->tickets_ = std::make_unique<DescriptorTickets>();
    StatusOr<std::unique_ptr<ShmSocket>> socket = ShmSocket::Start(
        options.shared_memory.socket_path.empty() ? DefaultShmSocketPath()
                                                  : options.shared_memory.socket_path,
        server->tickets_.get(), server->sessions_.get());
    if (!socket.ok()) return socket.status();
    server->shm_socket_ = std::move(socket).value();
  }
  if (!options.auth_client_certs_file.empty() && options.tls.client_ca_file.empty()) {
    return InvalidArgumentError(
        "--auth-client-certs maps client certificates: it needs mutual TLS (--tls-client-ca)");
  }
  if (!options.auth_tokens_file.empty() || !options.auth_client_certs_file.empty()) {
    StatusOr<std::unique_ptr<Authenticator>> auth =
        Authenticator::FromFiles(options.auth_tokens_file, options.auth_client_certs_file);
    if (!auth.ok()) return auth.status();
    server->auth_ = std::move(auth).value();
  }
  if (!options.listen_unix.empty()) {
    StatusOr<std::unique_ptr<UnixListenPath>> path = UnixListenPath::Claim(options.listen_unix);
    if (!path.ok()) return path.status();
    server->unix_listen_ = std::move(path).value();
  }
  server->service_ = std::make_unique<An1Service>(CallEnvironment{
      server->engine_.get(), server->metrics_.get(), server->regions_.get(),
      static_cast<uint64_t>(options.max_message_bytes), options.engine.limits.max_tensor_bytes,
      server->auth_.get(), server->tickets_.get(), server->shm_socket_path(),
      server->sessions_.get(), server->unix_socket_path()});

  static std::once_flag process_setup;
  std::call_once(process_setup, [] {
    // Our own grpc.health.v1 service (health_service.h): the default one's Watch never ends.
    grpc::EnableDefaultHealthCheckService(false);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
  server->health_ = std::make_unique<HealthService>();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, *credentials, &server->port_);
  int unix_port = 0;  // gRPC reports 1 for a bound Unix socket
  if (server->unix_listen_) {
    builder.AddListeningPort(server->unix_listen_->address(), *credentials, &unix_port);
  }
  // Refuse to share the port with another process (gRPC sets SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  const ConnectionOptions& c = options.connections;
  auto ms = [](int seconds) {  // 0 (or less): no limit, which gRPC reads from INT_MAX
    return seconds > 0 ? static_cast<int>(std::min<int64_t>(int64_t{seconds} * 1000, INT_MAX))
                       : INT_MAX;
  };
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, ms(c.max_age_seconds));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, ms(c.max_age_grace_seconds));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(c.max_idle_seconds));
  if (c.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, c.max_concurrent_streams);
  }
  if (c.max_metadata_bytes > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, c.max_metadata_bytes);
  }
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(c.keepalive_time_seconds));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(c.keepalive_timeout_seconds));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ms(c.min_client_ping_interval_seconds) == INT_MAX
                                 ? 0
                                 : ms(c.min_client_ping_interval_seconds));
  // The server's keepalive pings go on over a quiet connection (gRPC stops after 2 by default),
  // so a dead peer of a long Watch stream is noticed.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // The memory gRPC itself holds for this server (chiefly request bytes still arriving) is
  // bounded by the in-flight budget: the engine counts a request only once it is parsed.
  grpc::ResourceQuota quota("an1d");
  quota.Resize(static_cast<std::size_t>(
      std::min<uint64_t>(options.engine.max_inflight_bytes, std::numeric_limits<int64_t>::max())));
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(
      std::make_unique<UnparsedRequestInterceptorFactory>(server->metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->health_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0 ||
      (server->unix_listen_ && unix_port == 0)) {
    return UnavailableError(
        "cannot listen for gRPC on " + options.listen +
        (server->unix_listen_ ? " and " + server->unix_listen_->address() : ""));
  }
  if (server->unix_listen_) AN1_RETURN_IF_ERROR(server->unix_listen_->Bound());
  // The current state now, and NOT_SERVING when a device fault takes the last GPU out of service.
  HealthService* health = server->health_.get();
  server->engine_->SetHealthListener([health](bool healthy) { health->SetServing(healthy); });
  return server;
}

An1Server::~An1Server() { Shutdown(std::chrono::milliseconds(0)); }

void An1Server::Shutdown(std::chrono::milliseconds grace) {
  std::call_once(shutdown_once_, [&] {
    if (engine_ != nullptr) engine_->SetHealthListener(nullptr);
    shm_socket_.reset();  // no more descriptors in
    if (grpc_server_ != nullptr) {
      // NOT_SERVING, and the open Watch streams finished: the stop waits only for real work.
      health_->Shutdown();
      grpc_server_->Shutdown(std::chrono::system_clock::now() + grace);
      grpc_server_->Wait();
    }
    if (engine_ != nullptr) engine_->Drain();
    if (regions_ != nullptr) regions_->Clear();  // every region's descriptor closed
  });
}

}  // namespace an1::server
