#include "server/unparsed_request.h"

#include <chrono>
#include <string>

namespace an1::server {
namespace {

using Hook = grpc::experimental::InterceptionHookPoints;

class UnparsedRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  UnparsedRequestInterceptor(std::string method, bool one_request, ServerMetrics* metrics)
      : method_(std::move(method)), one_request_(one_request), metrics_(metrics) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // Only calls that take one request (unary, server streaming), on their first and only
    // receive: with a client stream, an empty receive is the stream's normal end.
    if (one_request_ && methods->QueryInterceptionHookPoint(Hook::POST_RECV_MESSAGE) &&
        receives_++ == 0 && methods->GetRecvMessage() == nullptr) {
      unparsed_ = true;
    }
    if (unparsed_ && methods->QueryInterceptionHookPoint(Hook::PRE_SEND_STATUS)) {
      const std::string rpc = method_.substr(method_.rfind('/') + 1);
      methods->ModifySendStatus(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "the request could not be parsed as the message " + rpc +
              " takes (malformed protobuf: a truncated field, a wrong wire type, or a string "
              "that is not UTF-8)"));
      metrics_->RecordRequest(
          rpc, "none", "INVALID_ARGUMENT",
          std::chrono::duration<double>(std::chrono::steady_clock::now() - created_).count());
      metrics_->RecordRejection("unparsable");
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  bool one_request_;
  ServerMetrics* metrics_;
  int receives_ = 0;
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  bool unparsed_ = false;
};

}  // namespace

grpc::experimental::Interceptor* UnparsedRequestInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  const bool one_request = info->type() == Type::UNARY || info->type() == Type::SERVER_STREAMING;
  return new UnparsedRequestInterceptor(info->method() == nullptr ? "" : info->method(),
                                        one_request, metrics_);
}

}  // namespace an1::server
