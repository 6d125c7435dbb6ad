// The C++ client library of AN1 Engine: typed calls to an an1d server over gRPC.
//
// A Client owns one channel and is thread-safe: several threads may call it at once. Every call
// returns the gRPC status of the RPC; on a non-OK status the outputs are left unspecified and the
// status message is the server's explanation.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "an1/v1/an1.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace an1::client {

// A tensor: row-major, little-endian elements of `dtype`, either held here (`bytes`) or in a
// shared memory region registered with the server (`region`; then `bytes` is unused).
struct HostTensor {
  v1::DType dtype = v1::DTYPE_FP32;
  std::vector<int64_t> shape;
  std::string bytes;
  std::optional<v1::RegionRef> region;
};

// TLS to an1d (its --tls-cert): PEM contents, not paths.
struct ClientTls {
  std::string root_certs;   // CA bundle the server's certificate must chain to; empty: the
                            // system's roots
  std::string cert_chain;   // this client's certificate, for a server that requires mTLS
  std::string private_key;  // its key
  std::string server_name;  // expected name in the server's certificate; empty: from the target
};

struct ClientOptions {
  // host:port of an1d, or unix:PATH for its --listen-unix socket (same host, no TCP stack)
  std::string target = "localhost:50051";
  // Largest message sent or received; must cover the tensors (the server has its own limit).
  int max_message_bytes = 1 << 30;
  // Per-call deadline; zero means none.
  std::chrono::milliseconds timeout{0};
  // Sent as `an1-client-id` metadata: shared memory regions belong to this id within this
  // client's session (CreateSession, made before the first region call and sent as
  // `an1-session-id`), or to the principal of `bearer_token`.
  std::string client_id;
  std::optional<ClientTls> tls;  // none: plaintext
  // Sent as `authorization: Bearer TOKEN` to a server with --auth-tokens; empty: none. Use it
  // over TLS: the token travels with every call.
  std::string bearer_token;
  // The server's Unix socket for shared memory descriptors; empty: the one GetServerInfo
  // advertises (set it when the server sees the socket at another path, as across containers).
  std::string shm_socket;
  // Microseconds an Attention, PagedAttention or Matmul call polls for its response before it
  // sleeps (0: it sleeps at once, gRPC's blocking call). Polling keeps a core busy while it lasts
  // and saves the wake-up of a sleeping thread: on a VM, where that wake-up is an IPI, 60-80 us of
  // a small call's round trip (tests/bench/RESULTS.md).
  int poll_us = 0;
};

struct AttentionArgs {
  HostTensor q, k, v;  // moved into the request
  v1::Backend backend = v1::BACKEND_AUTO;
  std::optional<bool> causal;                  // server default: true
  std::optional<float> scale;                  // server default: 1/sqrt(head_dim)
  std::optional<v1::RegionRef> output_region;  // write the output there instead of inline
  bool return_lse = false;                     // also return each query row's log-sum-exp
};

// PagedAttention (proto/an1/v1/an1.proto, PagedAttentionRequest): q (total_q, H, D) packed by
// sequence; int32 cu_seqlens_q (B + 1), page_table (B, max_pages_per_seq), kv_lens (B); caches
// (num_pages, page_size, Hkv, D). k_new/v_new (total_q, Hkv, D) need caches in a region.
struct PagedAttentionArgs {
  HostTensor q, cu_seqlens_q, k_cache, v_cache, page_table, kv_lens;  // moved into the request
  std::optional<HostTensor> k_new, v_new;  // appended into the caches before attending
  v1::Backend backend = v1::BACKEND_AUTO;
  std::optional<bool> causal;       // server default: true (bottom-right per sequence)
  std::optional<float> scale;       // server default: 1/sqrt(head_dim)
  std::optional<int> window_left;   // server default: -1 (unbounded)
  std::optional<int> window_right;  // server default: -1 (unbounded)
  float softcap = 0;                // 0: off
  std::optional<v1::RegionRef> output_region;
  bool return_lse = false;  // also return the (total_q, H) fp32 log-sum-exp
};

struct MatmulArgs {
  HostTensor a, b;
  v1::Backend backend = v1::BACKEND_AUTO;
  bool allow_tf32 = false;  // fp32 operands may be rounded to TF32 on the GPU
  std::optional<v1::RegionRef> output_region;
};

struct CallResult {
  HostTensor output;  // with `region` set and no bytes when the output went to a region
  // Attention with return_lse: (B, H, Sq) fp32 ((total_q, H) for paged attention), always inline:
  // ln(sum_j exp(q_i . k_j * scale)) over the keys row i sees, -inf for a row that sees none.
  // nullopt otherwise.
  std::optional<HostTensor> lse;
  v1::ExecutionInfo info;         // info.kernel() names the kernel that ran
  double round_trip_seconds = 0;  // measured by the client, serialization included
};

class Client {
 public:
  explicit Client(const ClientOptions& options);

  // grpc.health.v1 Check of the whole server; `serving` is true for SERVING.
  grpc::Status Health(bool* serving);
  grpc::Status Info(v1::GetServerInfoResponse* info);
  grpc::Status Attention(AttentionArgs args, CallResult* result);
  grpc::Status Matmul(MatmulArgs args, CallResult* result);
  grpc::Status PagedAttention(PagedAttentionArgs args, CallResult* result);

  // Shared memory regions of this client (ClientOptions::client_id).
  // Opens the object `key` with this process's rights (read-write, else read-only: outputs
  // into a read-only region are refused) and registers it as RegisterSystemSharedMemoryFd.
  grpc::Status RegisterSystemSharedMemory(const std::string& name, const std::string& key,
                                          uint64_t offset, uint64_t byte_size);
  // Passes `fd` (a shared memory object or memfd this process opened; it stays open) over the
  // server's shared memory socket and registers it with the ticket the server answered.
  grpc::Status RegisterSystemSharedMemoryFd(const std::string& name, int fd, uint64_t offset,
                                            uint64_t byte_size);
  // `handle`: the 64 raw bytes of a cudaIpcMemHandle_t of an allocation on GPU `device`.
  grpc::Status RegisterCudaSharedMemory(const std::string& name, const std::string& handle,
                                        int device, uint64_t byte_size);
  grpc::Status UnregisterSharedMemory(const std::string& name);
  grpc::Status UnregisterAllSharedMemory(uint32_t* unregistered);
  grpc::Status ListSharedMemory(v1::ListSharedMemoryResponse* regions);

 private:
  void Prepare(grpc::ClientContext* context) const;
  // One compute call: gRPC's blocking call, or with options_.poll_us its asynchronous form on a
  // completion queue this thread polls for that long before it sleeps on it.
  template <typename Request, typename Response>
  grpc::Status ComputeCall(
      grpc::Status (v1::An1::Stub::*blocking)(grpc::ClientContext*, const Request&, Response*),
      std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> (v1::An1::Stub::*async)(
          grpc::ClientContext*, const Request&, grpc::CompletionQueue*),
      grpc::ClientContext* context, const Request& request, Response* response);
  // The shm socket path (options, else GetServerInfo's, cached); FAILED_PRECONDITION when the
  // server has shared memory off.
  grpc::Status ShmSocket(std::string* path);
  // Creates this client's session (CreateSession) unless it has one; every region call first.
  grpc::Status EnsureSession();
  // Clears the cached session if it is still `stale` (the next call creates a new one).
  void ForgetSession(const std::string& stale);
  // Clears the cached shared memory socket path if it is still `stale` and not the configured one.
  void ForgetShmSocket(const std::string& stale);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::An1::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::mutex shm_socket_mutex_;
  std::string shm_socket_;  // once known
  mutable std::mutex session_mutex_;
  std::string session_id_;  // sent as `an1-session-id` once created
};

// A reference to [offset, offset + byte_size) of a registered region.
v1::RegionRef MakeRegionRef(const std::string& region, uint64_t offset, uint64_t byte_size);

// Bytes per element of a wire dtype (0 for unspecified).
std::size_t WireDTypeSize(v1::DType dtype);

}  // namespace an1::client
