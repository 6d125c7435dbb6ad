// The fixture of the server end-to-end tests: the real server on an ephemeral loopback port,
// called through the real client library (server_integration_test.cc, server_lifecycle_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <thread>

#include "client/client.h"
#include "client/elements.h"
#include "server/server.h"
#include "tests/http_get.h"
#include "tests/reference.h"

namespace an1::testing {

using client::AttentionArgs;
using client::CallResult;
using client::HostTensor;
using client::MatmulArgs;

constexpr int kMaxMessageBytes = 4 << 20;  // small, so that "too large" is cheap to provoke

inline std::unique_ptr<server::An1Server> StartServer(int max_queue_depth = 64) {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "127.0.0.1:0";
  options.max_message_bytes = kMaxMessageBytes;
  options.engine.disable_gpu = true;
  options.engine.cpu_threads = 2;
  options.engine.max_queue_depth = max_queue_depth;
  auto server = server::An1Server::Start(options);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return std::move(server).value();
}

inline HostTensor Random(std::vector<int64_t> shape, v1::DType dtype, std::mt19937_64& rng,
                         std::vector<float>* rounded = nullptr) {
  std::size_t n = 1;
  for (int64_t d : shape) n *= static_cast<std::size_t>(d);
  HostTensor t{dtype, std::move(shape), client::EncodeElements(RandomFloats(n, rng), dtype)};
  if (rounded) *rounded = client::DecodeElements(t.bytes, dtype);
  return t;
}

// One server for the whole suite: every test also checks that it still serves afterwards.
// (Stopping the metrics endpoint takes civetweb about two seconds, so servers are not per test.)
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { shared_server_ = StartServer().release(); }
  static void TearDownTestSuite() {
    delete shared_server_;
    shared_server_ = nullptr;
  }
  void SetUp() override { UseServer(shared_server_); }

  void UseServer(server::An1Server* server) {
    server_ = server;
    client_ = std::make_unique<client::Client>(
        client::ClientOptions{"127.0.0.1:" + std::to_string(server_->port()), 64 << 20, {}});
  }

  AttentionArgs ValidAttention(v1::DType dtype = v1::DTYPE_FP32) {
    AttentionArgs args;
    args.q = Random({1, 4, 5, 8}, dtype, rng_);
    args.k = Random({1, 2, 7, 8}, dtype, rng_);
    args.v = Random({1, 2, 7, 8}, dtype, rng_);
    return args;
  }

  // The server answers a valid request correctly after whatever happened before.
  void ExpectStillServing() {
    CallResult result;
    grpc::Status status = client_->Attention(ValidAttention(), &result);
    EXPECT_TRUE(status.ok()) << status.error_message();
    bool serving = false;
    EXPECT_TRUE(client_->Health(&serving).ok());
    EXPECT_TRUE(serving);
  }

  void ExpectAttentionError(AttentionArgs args, grpc::StatusCode code,
                            const std::string& fragment) {
    CallResult result;
    grpc::Status status = client_->Attention(std::move(args), &result);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_NE(status.error_message().find(fragment), std::string::npos)
        << "'" << status.error_message() << "' lacks '" << fragment << "'";
    ExpectStillServing();
  }

  static inline server::An1Server* shared_server_ = nullptr;
  std::mt19937_64 rng_{42};
  server::An1Server* server_ = nullptr;
  std::unique_ptr<client::Client> client_;
};

// A fresh server, so that its counters start from zero.
class MetricsTest : public ServerTest {
 protected:
  void SetUp() override {
    own_server_ = StartServer();
    UseServer(own_server_.get());
  }
  std::unique_ptr<server::An1Server> own_server_;
};

inline double Sample(const std::string& text, const std::string& series) {
  const std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

}  // namespace an1::testing
