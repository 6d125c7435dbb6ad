#include "server/unparsed_request.h"

#include <chrono>
#include <string>

namespace an1::server {
namespace {

using Hook = grpc::experimental::InterceptionHookPoints;

class UnparsedRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  UnparsedRequestInterceptor(std::string method, ServerMetrics* metrics)
      : method_(std::move(method)), metrics_(metrics) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(Hook::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
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
  ServerMetrics* metrics_;
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  bool unparsed_ = false;
};

}  // namespace

grpc::experimental::Interceptor* UnparsedRequestInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new UnparsedRequestInterceptor(info->method() == nullptr ? "" : info->method(), metrics_);
}

}  // namespace an1::server
