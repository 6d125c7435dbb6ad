#include "client/client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client/descriptor_passing.h"

namespace an1::client {
namespace {

void ToWire(HostTensor&& host, v1::Tensor* wire) {
  wire->set_dtype(host.dtype);
  for (int64_t d : host.shape) wire->add_shape(d);
  if (host.region) {
    *wire->mutable_region() = *host.region;
  } else {
    *wire->mutable_inline_data() = std::move(host.bytes);  // no copy of the tensor bytes
  }
}

void FromWire(v1::Tensor* wire, HostTensor* host) {
  host->dtype = wire->dtype();
  host->shape.assign(wire->shape().begin(), wire->shape().end());
  if (wire->has_region()) {
    host->region = wire->region();
    host->bytes.clear();
  } else {
    host->bytes = std::move(*wire->mutable_inline_data());
  }
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Whether a failure says the session is gone (expired after its idle time, or the server
// restarted): the registration is then retried once in a new session.
bool SessionGone(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
         status.error_message().find("unknown or expired session") != std::string::npos;
}

}  // namespace

v1::RegionRef MakeRegionRef(const std::string& region, uint64_t offset, uint64_t byte_size) {
  v1::RegionRef ref;
  ref.set_region(region);
  ref.set_offset(offset);
  ref.set_byte_size(byte_size);
  return ref;
}

std::size_t WireDTypeSize(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_FP16:
    case v1::DTYPE_BF16:
      return 2;
    case v1::DTYPE_FP32:
    case v1::DTYPE_INT32:
      return 4;
    default:
      return 0;
  }
}

Client::Client(const ClientOptions& options) : options_(options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls->root_certs;
    ssl.pem_cert_chain = options.tls->cert_chain;
    ssl.pem_private_key = options.tls->private_key;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls->server_name.empty()) args.SetSslTargetNameOverride(options.tls->server_name);
  }
  channel_ = grpc::CreateCustomChannel(options.target, credentials, args);
  stub_ = v1::An1::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

void Client::Prepare(grpc::ClientContext* context) const {
  if (options_.timeout.count() > 0) {
    context->set_deadline(std::chrono::system_clock::now() + options_.timeout);
  }
  if (!options_.client_id.empty()) context->AddMetadata("an1-client-id", options_.client_id);
  {
    std::lock_guard lock(session_mutex_);
    if (!session_id_.empty()) context->AddMetadata("an1-session-id", session_id_);
  }
  if (!options_.bearer_token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.bearer_token);
  }
}

grpc::Status Client::EnsureSession() {
  {
    std::lock_guard lock(session_mutex_);
    if (!session_id_.empty()) return grpc::Status::OK;
  }
  grpc::ClientContext context;
  Prepare(&context);
  v1::CreateSessionResponse response;
  grpc::Status status = stub_->CreateSession(&context, v1::CreateSessionRequest(), &response);
  if (!status.ok()) return status;
  std::lock_guard lock(session_mutex_);
  if (session_id_.empty()) session_id_ = response.session_id();
  return grpc::Status::OK;
}

grpc::Status Client::ShmSocket(std::string* path) {
  std::lock_guard lock(shm_socket_mutex_);
  if (shm_socket_.empty() && !options_.shm_socket.empty()) shm_socket_ = options_.shm_socket;
  if (shm_socket_.empty()) {
    v1::GetServerInfoResponse info;
    grpc::Status status = Info(&info);
    if (!status.ok()) return status;
    if (info.shm_socket().empty()) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "shared memory is disabled on this server; send tensors inline"};
    }
    shm_socket_ = info.shm_socket();
  }
  *path = shm_socket_;
  return grpc::Status::OK;
}

grpc::Status Client::RegisterSystemSharedMemory(const std::string& name, const std::string& key,
                                                uint64_t offset, uint64_t byte_size) {
  // A POSIX shared memory key: "/" then 1-254 characters without '/'.
  if (key.size() < 2 || key.size() > 255 || key[0] != '/' ||
      key.find('/', 1) != std::string::npos || key.find('\0') != std::string::npos) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "the shared memory key must be '/' followed by up to 254 characters without '/'"};
  }
  int fd = shm_open(key.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0 && errno == EACCES) fd = shm_open(key.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT)
      return {grpc::StatusCode::NOT_FOUND, "no shared memory object has that key"};
    return {
        error == EACCES ? grpc::StatusCode::PERMISSION_DENIED : grpc::StatusCode::INVALID_ARGUMENT,
        std::string("this process cannot open the shared memory object: ") + std::strerror(error)};
  }
  grpc::Status status = RegisterSystemSharedMemoryFd(name, fd, offset, byte_size);
  close(fd);
  return status;
}

void Client::ForgetShmSocket(const std::string& stale) {
  std::lock_guard lock(shm_socket_mutex_);
  if (shm_socket_ == stale && stale != options_.shm_socket) shm_socket_.clear();
}

void Client::ForgetSession(const std::string& stale) {
  std::lock_guard lock(session_mutex_);
  if (session_id_ == stale) session_id_.clear();
}

grpc::Status Client::RegisterSystemSharedMemoryFd(const std::string& name, int fd, uint64_t offset,
                                                  uint64_t byte_size) {
  // Retried when the server restarted (a new socket path: once; its sessions gone) or the
  // session expired (once).
  bool asked_for_socket = false, renewed = false;
  for (;;) {
    grpc::Status status = EnsureSession();
    if (!status.ok()) return status;
    std::string socket_path;
    status = ShmSocket(&socket_path);
    if (!status.ok()) return status;
    std::string session;
    {
      std::lock_guard lock(session_mutex_);
      session = session_id_;
    }
    std::string error;
    const std::string ticket = PassDescriptor(socket_path, fd, name, session, &error);
    if (ticket.empty() && !asked_for_socket && error.find("cannot connect") != std::string::npos) {
      asked_for_socket = true;
      ForgetShmSocket(socket_path);  // ask the server for its socket again
      continue;
    }
    if (ticket.empty()) {
      status = {error.find("unknown or expired session") != std::string::npos
                    ? grpc::StatusCode::UNAUTHENTICATED
                    : grpc::StatusCode::UNAVAILABLE,
                "cannot pass the shared memory descriptor: " + error};
    } else {
      grpc::ClientContext context;
      Prepare(&context);
      v1::RegisterSystemSharedMemoryRequest request;
      request.set_name(name);
      request.set_descriptor_ticket(ticket);
      request.set_offset(offset);
      request.set_byte_size(byte_size);
      v1::RegisterSharedMemoryResponse response;
      status = stub_->RegisterSystemSharedMemory(&context, request, &response);
    }
    if (renewed || !SessionGone(status)) return status;
    renewed = true;
    ForgetSession(session);
  }
}

grpc::Status Client::RegisterCudaSharedMemory(const std::string& name, const std::string& handle,
                                              int device, uint64_t byte_size) {
  for (int attempt = 0;; ++attempt) {
    if (grpc::Status status = EnsureSession(); !status.ok()) return status;
    std::string session;
    {
      std::lock_guard lock(session_mutex_);
      session = session_id_;
    }
    grpc::ClientContext context;
    Prepare(&context);
    v1::RegisterCudaSharedMemoryRequest request;
    request.set_name(name);
    request.set_raw_handle(handle);
    request.set_device_id(device);
    request.set_byte_size(byte_size);
    v1::RegisterSharedMemoryResponse response;
    grpc::Status status = stub_->RegisterCudaSharedMemory(&context, request, &response);
    if (attempt > 0 || !SessionGone(status)) return status;
    ForgetSession(session);
  }
}

grpc::Status Client::UnregisterSharedMemory(const std::string& name) {
  if (grpc::Status status = EnsureSession(); !status.ok()) return status;
  grpc::ClientContext context;
  Prepare(&context);
  v1::UnregisterSharedMemoryRequest request;
  request.set_name(name);
  v1::UnregisterSharedMemoryResponse response;
  return stub_->UnregisterSharedMemory(&context, request, &response);
}

grpc::Status Client::UnregisterAllSharedMemory(uint32_t* unregistered) {
  if (grpc::Status status = EnsureSession(); !status.ok()) return status;
  grpc::ClientContext context;
  Prepare(&context);
  v1::UnregisterSharedMemoryRequest request;
  request.set_all(true);
  v1::UnregisterSharedMemoryResponse response;
  grpc::Status status = stub_->UnregisterSharedMemory(&context, request, &response);
  *unregistered = response.unregistered();
  return status;
}

grpc::Status Client::ListSharedMemory(v1::ListSharedMemoryResponse* regions) {
  if (grpc::Status status = EnsureSession(); !status.ok()) return status;
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->ListSharedMemory(&context, v1::ListSharedMemoryRequest(), regions);
}

grpc::Status Client::Health(bool* serving) {
  grpc::ClientContext context;
  Prepare(&context);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health_->Check(&context, request, &response);
  *serving = status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  return status;
}

grpc::Status Client::Info(v1::GetServerInfoResponse* info) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), info);
}

template <typename Request, typename Response>
grpc::Status Client::ComputeCall(
    grpc::Status (v1::An1::Stub::*blocking)(grpc::ClientContext*, const Request&, Response*),
    std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> (v1::An1::Stub::*async)(
        grpc::ClientContext*, const Request&, grpc::CompletionQueue*),
    grpc::ClientContext* context, const Request& request, Response* response) {
  if (options_.poll_us <= 0) return (stub_.get()->*blocking)(context, request, response);
  grpc::CompletionQueue cq;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> call =
      (stub_.get()->*async)(context, request, &cq);
  call->Finish(response, &status, nullptr);
  void* tag = nullptr;
  bool ok = false;
  // Polls (a zero deadline: the queue's pollset is checked without sleeping), then sleeps.
  const auto poll_end =
      std::chrono::steady_clock::now() + std::chrono::microseconds(options_.poll_us);
  grpc::CompletionQueue::NextStatus next = grpc::CompletionQueue::TIMEOUT;
  while (next == grpc::CompletionQueue::TIMEOUT && std::chrono::steady_clock::now() < poll_end) {
    next = cq.AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC));
  }
  if (next == grpc::CompletionQueue::TIMEOUT) cq.Next(&tag, &ok);  // sleeps until the event
  // A queue is shut down and drained before it goes (its one event was taken above).
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

grpc::Status Client::Attention(AttentionArgs args, CallResult* result) {
  const auto start = std::chrono::steady_clock::now();
  v1::AttentionRequest request;
  ToWire(std::move(args.q), request.mutable_q());
  ToWire(std::move(args.k), request.mutable_k());
  ToWire(std::move(args.v), request.mutable_v());
  request.set_backend(args.backend);
  if (args.causal) request.set_causal(*args.causal);
  if (args.scale) request.set_scale(*args.scale);
  if (args.output_region) *request.mutable_output()->mutable_region() = *args.output_region;
  if (args.return_lse) request.set_return_lse(true);
  grpc::ClientContext context;
  Prepare(&context);
  v1::AttentionResponse response;
  grpc::Status status = ComputeCall(&v1::An1::Stub::Attention, &v1::An1::Stub::AsyncAttention,
                                    &context, request, &response);
  if (!status.ok()) return status;
  FromWire(response.mutable_output(), &result->output);
  result->lse.reset();
  if (response.has_lse()) FromWire(response.mutable_lse(), &result->lse.emplace());
  result->info = response.info();
  result->round_trip_seconds = SecondsSince(start);
  return status;
}

grpc::Status Client::PagedAttention(PagedAttentionArgs args, CallResult* result) {
  const auto start = std::chrono::steady_clock::now();
  v1::PagedAttentionRequest request;
  ToWire(std::move(args.q), request.mutable_q());
  ToWire(std::move(args.cu_seqlens_q), request.mutable_cu_seqlens_q());
  ToWire(std::move(args.k_cache), request.mutable_k_cache());
  ToWire(std::move(args.v_cache), request.mutable_v_cache());
  ToWire(std::move(args.page_table), request.mutable_page_table());
  ToWire(std::move(args.kv_lens), request.mutable_kv_lens());
  if (args.k_new) ToWire(std::move(*args.k_new), request.mutable_k_new());
  if (args.v_new) ToWire(std::move(*args.v_new), request.mutable_v_new());
  request.set_backend(args.backend);
  if (args.causal) request.set_causal(*args.causal);
  if (args.scale) request.set_scale(*args.scale);
  if (args.window_left) request.set_window_left(*args.window_left);
  if (args.window_right) request.set_window_right(*args.window_right);
  request.set_softcap(args.softcap);
  if (args.output_region) *request.mutable_output()->mutable_region() = *args.output_region;
  if (args.return_lse) request.set_return_lse(true);
  grpc::ClientContext context;
  Prepare(&context);
  v1::PagedAttentionResponse response;
  grpc::Status status =
      ComputeCall(&v1::An1::Stub::PagedAttention, &v1::An1::Stub::AsyncPagedAttention, &context,
                  request, &response);
  if (!status.ok()) return status;
  FromWire(response.mutable_output(), &result->output);
  result->lse.reset();
  if (response.has_lse()) FromWire(response.mutable_lse(), &result->lse.emplace());
  result->info = response.info();
  result->round_trip_seconds = SecondsSince(start);
  return status;
}

grpc::Status Client::Matmul(MatmulArgs args, CallResult* result) {
  const auto start = std::chrono::steady_clock::now();
  v1::MatmulRequest request;
  ToWire(std::move(args.a), request.mutable_a());
  ToWire(std::move(args.b), request.mutable_b());
  request.set_backend(args.backend);
  request.set_allow_tf32(args.allow_tf32);
  if (args.output_region) *request.mutable_output()->mutable_region() = *args.output_region;
  grpc::ClientContext context;
  Prepare(&context);
  v1::MatmulResponse response;
  grpc::Status status = ComputeCall(&v1::An1::Stub::Matmul, &v1::An1::Stub::AsyncMatmul, &context,
                                    request, &response);
  if (!status.ok()) return status;
  FromWire(response.mutable_output(), &result->output);
  result->lse.reset();
  result->info = response.info();
  result->round_trip_seconds = SecondsSince(start);
  return status;
}

}  // namespace an1::client
