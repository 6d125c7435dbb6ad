// Requests that cannot be parsed (issue 18). gRPC's callback handlers answer a request message
// that fails to deserialize with UNIMPLEMENTED and an empty message before any service code
// runs; this server interceptor notices the failed parse (POST_RECV_MESSAGE without a message)
// and turns the status it is about to send into INVALID_ARGUMENT saying why, counted in
// an1_requests_total{code="INVALID_ARGUMENT"} and an1_requests_rejected_total{reason=
// "unparsable"}. Other calls pass untouched.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

#include "server/metrics.h"

namespace an1::server {

class UnparsedRequestInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit UnparsedRequestInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics* metrics_;  // not owned; outlives the server
};

}  // namespace an1::server
