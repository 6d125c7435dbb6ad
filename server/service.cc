#include "server/service.h"

#include <chrono>
#include <string>

#include "server/convert.h"

namespace an1::server {

using Clock = std::chrono::steady_clock;

StatusOr<std::string> An1Service::ShmOwner(const grpc::CallbackServerContext& context) const {
  const StatusOr<Caller> caller = Authorize(env_.auth, context, Scope::kShm);
  if (!caller.ok()) return caller.status();
  return RegionOwner(*caller, context.client_metadata(), env_.sessions);
}

grpc::ServerUnaryReactor* An1Service::Attention(grpc::CallbackServerContext* context,
                                                const v1::AttentionRequest* request,
                                                v1::AttentionResponse* response) {
  auto* call = new EngineCall(context, env_, "Attention");
  if (Status allowed = call->Authorized(); !allowed.ok()) return call->Reject(allowed), call;
  StatusOr<TensorView> q = call->Input("q", request->has_q(), request->q());
  if (!q.ok()) return call->Reject(q.status()), call;
  StatusOr<TensorView> k = call->Input("k", request->has_k(), request->k());
  if (!k.ok()) return call->Reject(k.status()), call;
  StatusOr<TensorView> v = call->Input("v", request->has_v(), request->v());
  if (!v.ok()) return call->Reject(v.status()), call;
  StatusOr<BackendKind> backend = ToBackendKind(request->backend());
  if (!backend.ok()) return call->Reject(backend.status()), call;
  Status placement = call->SetOutputPlacement(request->has_output(), request->output());
  if (!placement.ok()) return call->Reject(placement), call;

  AttentionInputs inputs;
  inputs.q = *q;
  inputs.k = *k;
  inputs.v = *v;
  inputs.causal = request->has_causal() ? request->causal() : true;
  if (request->has_scale()) inputs.scale = request->scale();
  if (request->return_lse()) {  // always inline in the response, wherever the output goes
    inputs.return_lse = true;
    StatusOr<std::span<float>> lse = call->LseOutput(inputs.q, response->mutable_lse());
    if (!lse.ok()) return call->Reject(lse.status()), call;
    inputs.lse = *lse;
  }
  StatusOr<PreparedRequest> prepared = env_.engine->PrepareAttention(inputs, *backend);
  if (!prepared.ok()) return call->Reject(prepared.status()), call;
  call->Submit(std::move(prepared).value(), response->mutable_output(), response->mutable_info());
  return call;
}

grpc::ServerUnaryReactor* An1Service::Matmul(grpc::CallbackServerContext* context,
                                             const v1::MatmulRequest* request,
                                             v1::MatmulResponse* response) {
  auto* call = new EngineCall(context, env_, "Matmul");
  if (Status allowed = call->Authorized(); !allowed.ok()) return call->Reject(allowed), call;
  StatusOr<TensorView> a = call->Input("a", request->has_a(), request->a());
  if (!a.ok()) return call->Reject(a.status()), call;
  StatusOr<TensorView> b = call->Input("b", request->has_b(), request->b());
  if (!b.ok()) return call->Reject(b.status()), call;
  StatusOr<BackendKind> backend = ToBackendKind(request->backend());
  if (!backend.ok()) return call->Reject(backend.status()), call;
  Status placement = call->SetOutputPlacement(request->has_output(), request->output());
  if (!placement.ok()) return call->Reject(placement), call;

  StatusOr<PreparedRequest> prepared =
      env_.engine->PrepareMatmul(*a, *b, *backend, request->allow_tf32());
  if (!prepared.ok()) return call->Reject(prepared.status()), call;
  call->Submit(std::move(prepared).value(), response->mutable_output(), response->mutable_info());
  return call;
}

grpc::ServerUnaryReactor* An1Service::FinishNow(grpc::CallbackServerContext* context,
                                                const char* rpc, Clock::time_point started,
                                                const Status& status) {
  env_.metrics->RecordRequest(rpc, "none", std::string(StatusCodeName(status.code())),
                              std::chrono::duration<double>(Clock::now() - started).count());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* An1Service::GetServerInfo(grpc::CallbackServerContext* context,
                                                    const v1::GetServerInfoRequest* /*request*/,
                                                    v1::GetServerInfoResponse* response) {
  const auto started = Clock::now();
  const StatusOr<Caller> caller = Authorize(env_.auth, *context, Scope::kInfer);
  if (!caller.ok()) return FinishNow(context, "GetServerInfo", started, caller.status());
  FillServerInfo(env_.engine->Info(), env_.engine->ReadGpuEnergy(), env_.max_message_bytes,
                 response);
  response->set_shm_socket(env_.shm_socket);
  response->set_grpc_unix_socket(env_.grpc_unix_socket);
  if (!caller->admin) {  // who holds the license is for administrators
    response->mutable_license()->clear_licensee();
    response->mutable_license()->clear_license_id();
  }
  return FinishNow(context, "GetServerInfo", started, OkStatus());
}

grpc::ServerUnaryReactor* An1Service::CreateSession(grpc::CallbackServerContext* context,
                                                    const v1::CreateSessionRequest* /*request*/,
                                                    v1::CreateSessionResponse* response) {
  const auto started = Clock::now();
  const StatusOr<Caller> caller = Authorize(env_.auth, *context, Scope::kShm);
  if (!caller.ok()) return FinishNow(context, "CreateSession", started, caller.status());
  StatusOr<std::string> session = env_.sessions->Create(caller->principal);
  if (session.ok()) response->set_session_id(*session);
  return FinishNow(context, "CreateSession", started, session.status());
}

grpc::ServerUnaryReactor* An1Service::RegisterSystemSharedMemory(
    grpc::CallbackServerContext* context, const v1::RegisterSystemSharedMemoryRequest* request,
    v1::RegisterSharedMemoryResponse* /*response*/) {
  const auto started = Clock::now();
  const StatusOr<std::string> client = ShmOwner(*context);
  if (!client.ok())
    return FinishNow(context, "RegisterSystemSharedMemory", started, client.status());
  Status status;
  if (request->descriptor_ticket().empty()) {
    status = env_.regions->RegisterSystemByKey(*client, request->name(), request->key(),
                                               request->offset(), request->byte_size());
  } else if (env_.tickets == nullptr) {
    status =
        FailedPreconditionError("shared memory is disabled on this server; send tensors inline");
  } else {
    // The ticket is the session's that passed the descriptor (with tokens, the session of this
    // principal): another caller holding it cannot redeem it.
    const StatusOr<Caller> caller = Authorize(env_.auth, *context, Scope::kShm);
    StatusOr<std::string> session =
        env_.sessions->Resolve(context->client_metadata(), caller->principal);
    StatusOr<UniqueFd> fd = !session.ok() ? StatusOr<UniqueFd>(session.status())
                                          : env_.tickets->Redeem(request->descriptor_ticket(),
                                                                 request->name(), *session);
    status = !fd.ok()
                 ? fd.status()
                 : env_.regions->RegisterSystem(*client, request->name(), std::move(fd).value(),
                                                request->offset(), request->byte_size());
  }
  return FinishNow(context, "RegisterSystemSharedMemory", started, status);
}

grpc::ServerUnaryReactor* An1Service::RegisterCudaSharedMemory(
    grpc::CallbackServerContext* context, const v1::RegisterCudaSharedMemoryRequest* request,
    v1::RegisterSharedMemoryResponse* /*response*/) {
  const auto started = Clock::now();
  const StatusOr<std::string> client = ShmOwner(*context);
  return FinishNow(context, "RegisterCudaSharedMemory", started,
                   !client.ok()
                       ? client.status()
                       : env_.regions->RegisterCuda(*client, request->name(), request->raw_handle(),
                                                    request->device_id(), request->byte_size()));
}

grpc::ServerUnaryReactor* An1Service::UnregisterSharedMemory(
    grpc::CallbackServerContext* context, const v1::UnregisterSharedMemoryRequest* request,
    v1::UnregisterSharedMemoryResponse* response) {
  const auto started = Clock::now();
  const StatusOr<std::string> client = ShmOwner(*context);
  Status status = client.status();
  if (status.ok() && request->all()) {
    response->set_unregistered(env_.regions->UnregisterAll(*client));
  } else if (status.ok()) {
    status = env_.regions->Unregister(*client, request->name());
    if (status.ok()) response->set_unregistered(1);
  }
  return FinishNow(context, "UnregisterSharedMemory", started, status);
}

grpc::ServerUnaryReactor* An1Service::ListSharedMemory(grpc::CallbackServerContext* context,
                                                       const v1::ListSharedMemoryRequest* /*req*/,
                                                       v1::ListSharedMemoryResponse* response) {
  const auto started = Clock::now();
  const StatusOr<std::string> client = ShmOwner(*context);
  if (!client.ok()) return FinishNow(context, "ListSharedMemory", started, client.status());
  for (const RegionInfo& info : env_.regions->List(*client)) {
    v1::SharedMemoryRegion* region = response->add_regions();
    region->set_name(info.name);
    region->set_kind(info.kind);
    region->set_byte_size(info.byte_size);
  }
  return FinishNow(context, "ListSharedMemory", started, OkStatus());
}

}  // namespace an1::server
