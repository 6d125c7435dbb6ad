// An1Server: the engine, the gRPC service (with health and reflection) and the metrics endpoint,
// started together and shut down together.
//
// Thread-safety: Start, Shutdown and the accessors may be called from any thread; Shutdown is
// idempotent. The destructor shuts down with no grace period if Shutdown was not called.
#pragma once

#include <grpcpp/server.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "engine/engine.h"
#include "server/health_service.h"
#include "server/metrics.h"
#include "server/service.h"
#include "server/sessions.h"
#include "server/shared_memory.h"
#include "server/shm_socket.h"
#include "server/tls.h"
#include "server/unix_listen.h"

namespace an1::server {

// HTTP/2 connection management of the gRPC port; 0 turns a limit off. Defaults suit a
// replica behind L4 load balancing: connections are recycled so clients spread over new replicas.
struct ConnectionOptions {
  // After this long a connection gets GOAWAY (gRPC adds +-10% jitter): its client reconnects,
  // re-resolving the name, and reaches replicas that started after it connected.
  int max_age_seconds = 300;
  int max_age_grace_seconds = 120;     // calls in flight on a recycled connection get this long
  int max_idle_seconds = 600;          // a connection without calls for this long is closed
  int max_concurrent_streams = 256;    // calls at once on one connection
  int max_metadata_bytes = 16 << 10;   // request headers (metadata) of one call
  int keepalive_time_seconds = 60;     // the server pings a quiet connection this often
  int keepalive_timeout_seconds = 20;  // and closes it when the ping is not answered
  // Client pings closer together than this while calls are open are abuse (GOAWAY
  // ENHANCE_YOUR_CALM); with no call open gRPC allows one every 2 hours. 0: any interval.
  int min_client_ping_interval_seconds = 10;
};

struct ServerOptions {
  // Loopback by default: only this host's clients, until a deployment says otherwise (the image
  // and the manifests pass 0.0.0.0; docs/security.md).
  std::string listen = "127.0.0.1:50051";         // gRPC address; port 0 picks a free port
  std::string metrics_listen = "127.0.0.1:9464";  // Prometheus /metrics; empty disables it
  // Also serve gRPC on this Unix-domain socket path (target `unix:PATH`), for clients on this
  // host; empty: TCP only (unix_listen.h).
  std::string listen_unix;
  // Largest request or response message. 1 GiB carries an inline fp16 attention at B=8, H=32,
  // S=2048, D=128 (384 MiB of q, k and v); gRPC caps it at 2 GiB - 1.
  int max_message_bytes = 1 << 30;
  EngineOptions engine;
  SharedMemoryOptions shared_memory;
  ConnectionOptions connections;
  TlsOptions tls;                // TLS / mTLS on the gRPC port (tls.h); none: plaintext
  std::string auth_tokens_file;  // bearer tokens (auth.h); empty: no authentication
  // mTLS client certificate identities -> principals (auth.h); needs tls.client_ca_file.
  std::string auth_client_certs_file;
};

class An1Server {
 public:
  // Starts everything. Errors: INVALID_ARGUMENT for bad options, UNAVAILABLE when an address
  // cannot be bound.
  static StatusOr<std::unique_ptr<An1Server>> Start(const ServerOptions& options);
  ~An1Server();

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }  // 0 when metrics are disabled
  // The Unix socket gRPC is also served on (ServerOptions::listen_unix); empty when none.
  std::string unix_socket_path() const { return unix_listen_ ? unix_listen_->path() : ""; }
  // The Unix socket clients pass shared memory descriptors on; empty when shared memory is off.
  std::string shm_socket_path() const { return shm_socket_ ? shm_socket_->path() : ""; }
  const Engine& engine() const { return *engine_; }

  // Graceful stop: health turns NOT_SERVING, new calls are refused, calls in flight get up to
  // `grace` to finish (then they are cancelled), the engine drains.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  An1Server() = default;

  // Declaration order is destruction order in reverse: the gRPC server goes first, the engine last.
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<RegionRegistry> regions_;
  std::unique_ptr<DescriptorTickets> tickets_;
  std::unique_ptr<SessionRegistry> sessions_;
  std::unique_ptr<ShmSocket> shm_socket_;  // before tickets_ in destruction
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<An1Service> service_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<UnixListenPath> unix_listen_;  // after grpc_server_ in destruction
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::once_flag shutdown_once_;
};

}  // namespace an1::server
