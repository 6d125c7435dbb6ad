// An1Service::PagedAttention: the PagedAttention RPC into the engine, through an EngineCall like
// Attention (regions, output placement, inline LSE, metrics). The caches of a request with k_new
// are written back into their system shared memory region (the appended slots only).
#include "server/convert.h"
#include "server/service.h"

namespace an1::server {

grpc::ServerUnaryReactor* An1Service::PagedAttention(grpc::CallbackServerContext* context,
                                                     const v1::PagedAttentionRequest* request,
                                                     v1::PagedAttentionResponse* response) {
  auto* call = new EngineCall(context, env_, "PagedAttention");
  if (Status allowed = call->Authorized(); !allowed.ok()) return call->Reject(allowed), call;
  PagedAttentionInputs inputs;
  for (const auto& [name, present, tensor, into] :
       {std::tuple{"q", request->has_q(), &request->q(), &inputs.q},
        {"cu_seqlens_q", request->has_cu_seqlens_q(), &request->cu_seqlens_q(),
         &inputs.cu_seqlens_q},
        {"k_cache", request->has_k_cache(), &request->k_cache(), &inputs.k_cache},
        {"v_cache", request->has_v_cache(), &request->v_cache(), &inputs.v_cache},
        {"page_table", request->has_page_table(), &request->page_table(), &inputs.page_table},
        {"kv_lens", request->has_kv_lens(), &request->kv_lens(), &inputs.kv_lens}}) {
    StatusOr<TensorView> view = call->Input(name, present, *tensor);
    if (!view.ok()) return call->Reject(view.status()), call;
    *into = std::move(view).value();
  }
  for (const auto& [name, present, tensor, into] :
       {std::tuple{"k_new", request->has_k_new(), &request->k_new(), &inputs.k_new},
        {"v_new", request->has_v_new(), &request->v_new(), &inputs.v_new}}) {
    if (!present) continue;
    StatusOr<TensorView> view = call->Input(name, present, *tensor);
    if (!view.ok()) return call->Reject(view.status()), call;
    *into = std::move(view).value();
  }
  if (inputs.k_new || inputs.v_new) {  // the append goes into the caller's caches
    StatusOr<std::span<std::byte>> k_cache = call->WritableInput(inputs.k_cache);
    if (!k_cache.ok()) return call->Reject(k_cache.status()), call;
    StatusOr<std::span<std::byte>> v_cache = call->WritableInput(inputs.v_cache);
    if (!v_cache.ok()) return call->Reject(v_cache.status()), call;
    inputs.k_cache_writable = *k_cache;
    inputs.v_cache_writable = *v_cache;
    inputs.appended = call->AppendedRanges();
  }
  StatusOr<BackendKind> backend = ToBackendKind(request->backend());
  if (!backend.ok()) return call->Reject(backend.status()), call;
  Status placement = call->SetOutputPlacement(request->has_output(), request->output());
  if (!placement.ok()) return call->Reject(placement), call;

  inputs.causal = request->has_causal() ? request->causal() : true;
  if (request->has_scale()) inputs.scale = request->scale();
  inputs.window_left = request->has_window_left() ? request->window_left() : -1;
  inputs.window_right = request->has_window_right() ? request->window_right() : -1;
  inputs.softcap = request->softcap();
  if (request->return_lse()) {  // always inline in the response, wherever the output goes
    inputs.return_lse = true;
    StatusOr<std::span<float>> lse = call->PagedLseOutput(inputs.q, response->mutable_lse());
    if (!lse.ok()) return call->Reject(lse.status()), call;
    inputs.lse = *lse;
  }
  StatusOr<PreparedRequest> prepared = env_.engine->PreparePagedAttention(inputs, *backend);
  if (!prepared.ok()) return call->Reject(prepared.status()), call;
  call->Submit(std::move(prepared).value(), response->mutable_output(), response->mutable_info());
  return call;
}

}  // namespace an1::server
