#include "server/service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "server/convert.h"

namespace an1::server {
namespace {

using Clock = std::chrono::steady_clock;

// Reserved for the response's fields besides the output bytes when checking the message limit.
constexpr uint64_t kResponseOverheadBytes = 64 * 1024;

std::string LowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Clock::time_point SteadyDeadline(std::chrono::system_clock::time_point deadline) {
  const auto now_system = std::chrono::system_clock::now();
  if (deadline >= now_system + std::chrono::hours(24 * 365)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(deadline - now_system);
}

// One Attention or Matmul call: lives from arrival until gRPC reports it done.
class EngineCall final : public grpc::ServerUnaryReactor {
 public:
  EngineCall(grpc::CallbackServerContext* context, ServerMetrics* metrics, const char* rpc)
      : metrics_(metrics), rpc_(rpc), started_(Clock::now()) {
    control_.deadline = SteadyDeadline(context->deadline());
    control_.cancelled = std::make_shared<std::atomic<bool>>(false);
    metrics_->in_flight().Increment();
  }

  void OnCancel() override { control_.cancelled->store(true); }
  void OnDone() override { delete this; }

  const RequestControl& control() const { return control_; }

  // Replies with an error before the engine ran anything.
  void Reject(const Status& status) {
    metrics_->RecordRejection(LowerCase(StatusCodeName(status.code())));
    FinishWith(status, "none");
  }

  // Replies once the engine finished (or dropped) the request.
  void Complete(const Status& status, const ExecutionReport& report) {
    const std::string backend(BackendKindName(report.backend));
    if (status.code() == StatusCode::kCancelled || status.code() == StatusCode::kDeadlineExceeded) {
      metrics_->RecordRejection(LowerCase(StatusCodeName(status.code())));
    } else {
      metrics_->RecordExecution(rpc_, backend, report.queue_seconds, report.compute_seconds);
    }
    FinishWith(status, backend);
  }

 private:
  void FinishWith(const Status& status, const std::string& backend) {
    const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    if (status.code() == StatusCode::kInternal) {
      spdlog::error("{} failed: {}", rpc_, status.message());
    } else if (!status.ok() && spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("{} -> {}", rpc_, status.ToString());
    }
    metrics_->RecordRequest(rpc_, backend, std::string(StatusCodeName(status.code())), seconds);
    metrics_->in_flight().Decrement();
    Finish(ToGrpcStatus(status));  // last use of `this`: OnDone may delete it from here on
  }

  ServerMetrics* metrics_;
  const char* rpc_;
  Clock::time_point started_;
  RequestControl control_;
};

// Gives the response an inline output tensor of `spec`'s size and returns its bytes.
StatusOr<std::span<std::byte>> AllocateInlineOutput(const TensorSpec& spec,
                                                    uint64_t max_message_bytes,
                                                    v1::Tensor* tensor) {
  if (spec.byte_size + kResponseOverheadBytes > max_message_bytes) {
    return ResourceExhaustedError("the output needs " + std::to_string(spec.byte_size) +
                                  " bytes, more than fits in a response of at most " +
                                  std::to_string(max_message_bytes) + " bytes");
  }
  tensor->set_dtype(ToProtoDType(spec.dtype));
  for (int64_t dim : spec.shape) tensor->add_shape(dim);
  std::string* bytes = tensor->mutable_inline_data();
  bytes->resize(spec.byte_size);
  return std::span(reinterpret_cast<std::byte*>(bytes->data()), bytes->size());
}

// Shared tail of Attention and Matmul: enqueue with an inline output that is allocated in the
// response only once the request runs, and reply when done.
template <typename Prepared>
void SubmitToEngine(Engine& engine, ServerMetrics& metrics, EngineCall* call, Prepared prepared,
                    uint64_t max_message_bytes, v1::Tensor* output, v1::ExecutionInfo* info) {
  // Checked before admission, so that a result too large to send is refused at once.
  const TensorSpec& spec = prepared.problem.output;
  if (spec.byte_size + kResponseOverheadBytes > max_message_bytes) {
    return call->Reject(ResourceExhaustedError("the output needs " +
                                               std::to_string(spec.byte_size) +
                                               " bytes, more than fits in a response of at most " +
                                               std::to_string(max_message_bytes) + " bytes"));
  }
  Status admitted = engine.Submit(
      std::move(prepared),
      [max_message_bytes, output](const TensorSpec& spec) {
        return AllocateInlineOutput(spec, max_message_bytes, output);
      },
      call->control(),
      [call, info, &metrics](const Status& status, const ExecutionReport& report) {
        if (status.ok()) {
          FillExecutionInfo(report, info);
          metrics.RecordBytes("inline", "out", static_cast<double>(report.output_bytes));
        }
        call->Complete(status, report);
      });
  if (!admitted.ok()) call->Reject(admitted);
}

}  // namespace

An1Service::An1Service(Engine* engine, ServerMetrics* metrics, uint64_t max_message_bytes)
    : engine_(engine), metrics_(metrics), max_message_bytes_(max_message_bytes) {}

grpc::ServerUnaryReactor* An1Service::Attention(grpc::CallbackServerContext* context,
                                                const v1::AttentionRequest* request,
                                                v1::AttentionResponse* response) {
  auto* call = new EngineCall(context, metrics_, "Attention");
  StatusOr<TensorView> q = ToTensorView("q", request->has_q(), request->q());
  if (!q.ok()) return call->Reject(q.status()), call;
  StatusOr<TensorView> k = ToTensorView("k", request->has_k(), request->k());
  if (!k.ok()) return call->Reject(k.status()), call;
  StatusOr<TensorView> v = ToTensorView("v", request->has_v(), request->v());
  if (!v.ok()) return call->Reject(v.status()), call;
  StatusOr<BackendKind> backend = ToBackendKind(request->backend());
  if (!backend.ok()) return call->Reject(backend.status()), call;
  Status placement = CheckOutputPlacement(request->has_output(), request->output());
  if (!placement.ok()) return call->Reject(placement), call;

  AttentionInputs inputs{
      *q, *k, *v, request->has_causal() ? request->causal() : true,
      request->has_scale() ? std::optional<float>(request->scale()) : std::nullopt};
  StatusOr<PreparedAttention> prepared = engine_->PrepareAttention(inputs, *backend);
  if (!prepared.ok()) return call->Reject(prepared.status()), call;
  metrics_->RecordBytes("inline", "in",
                        static_cast<double>(q->data.size() + k->data.size() + v->data.size()));
  SubmitToEngine(*engine_, *metrics_, call, std::move(prepared).value(), max_message_bytes_,
                 response->mutable_output(), response->mutable_info());
  return call;
}

grpc::ServerUnaryReactor* An1Service::Matmul(grpc::CallbackServerContext* context,
                                             const v1::MatmulRequest* request,
                                             v1::MatmulResponse* response) {
  auto* call = new EngineCall(context, metrics_, "Matmul");
  StatusOr<TensorView> a = ToTensorView("a", request->has_a(), request->a());
  if (!a.ok()) return call->Reject(a.status()), call;
  StatusOr<TensorView> b = ToTensorView("b", request->has_b(), request->b());
  if (!b.ok()) return call->Reject(b.status()), call;
  StatusOr<BackendKind> backend = ToBackendKind(request->backend());
  if (!backend.ok()) return call->Reject(backend.status()), call;
  Status placement = CheckOutputPlacement(request->has_output(), request->output());
  if (!placement.ok()) return call->Reject(placement), call;

  StatusOr<PreparedMatmul> prepared =
      engine_->PrepareMatmul(*a, *b, *backend, request->allow_tf32());
  if (!prepared.ok()) return call->Reject(prepared.status()), call;
  metrics_->RecordBytes("inline", "in", static_cast<double>(a->data.size() + b->data.size()));
  SubmitToEngine(*engine_, *metrics_, call, std::move(prepared).value(), max_message_bytes_,
                 response->mutable_output(), response->mutable_info());
  return call;
}

grpc::ServerUnaryReactor* An1Service::GetServerInfo(grpc::CallbackServerContext* context,
                                                    const v1::GetServerInfoRequest* /*request*/,
                                                    v1::GetServerInfoResponse* response) {
  const auto started = Clock::now();
  FillServerInfo(engine_->Info(), max_message_bytes_, response);
  metrics_->RecordRequest("GetServerInfo", "none", "OK",
                          std::chrono::duration<double>(Clock::now() - started).count());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace an1::server
