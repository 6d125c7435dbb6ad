// The server's life and accounting end to end: metrics scraped from the real HTTP endpoint,
// requests abandoned by their callers, graceful shutdown, start-up errors, and the same service on
// a Unix socket (--listen-unix).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "tests/server_test_fixture.h"

namespace an1 {
namespace {

using client::AttentionArgs;
using client::CallResult;
using client::HostTensor;
using client::MatmulArgs;
using testing::kMaxMessageBytes;
using testing::MetricsTest;
using testing::Random;
using testing::Sample;
using testing::ServerTest;
using testing::StartServer;

TEST_F(MetricsTest, CountRequestsByRpcBackendAndCode) {
  ASSERT_GT(server_->metrics_port(), 0);
  constexpr int kOk = 3, kBad = 2;
  for (int i = 0; i < kOk; ++i) {
    CallResult result;
    ASSERT_TRUE(client_->Attention(ValidAttention(), &result).ok());
    EXPECT_EQ(result.info.kernel(), "baseline.cpu");
    EXPECT_EQ(result.info.tokens(), 1 * 5);       // B * Sq
    EXPECT_FALSE(result.info.energy_measured());  // no GPU energy counter on the CPU
  }
  for (int i = 0; i < kBad; ++i) {
    AttentionArgs args = ValidAttention();
    args.q.bytes.pop_back();
    CallResult result;
    EXPECT_FALSE(client_->Attention(std::move(args), &result).ok());
  }
  const std::string text = testing::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(Sample(text, R"(an1_requests_total{backend="baseline",code="OK",rpc="Attention"})"),
            kOk);
  EXPECT_EQ(
      Sample(text, R"(an1_requests_total{backend="none",code="INVALID_ARGUMENT",rpc="Attention"})"),
      kBad);
  EXPECT_EQ(
      Sample(text,
             R"(an1_request_duration_seconds_count{backend="baseline",code="OK",rpc="Attention"})"),
      kOk);
  EXPECT_EQ(
      Sample(
          text,
          R"(an1_request_duration_seconds_bucket{backend="baseline",code="OK",rpc="Attention",le="+Inf"})"),
      kOk);
  EXPECT_EQ(
      Sample(text, R"(an1_compute_duration_seconds_count{backend="baseline",rpc="Attention"})"),
      kOk);
  EXPECT_EQ(Sample(text, R"(an1_requests_rejected_total{reason="invalid_argument"})"), kBad);
  EXPECT_EQ(Sample(text, "an1_requests_in_flight"), 0);
  EXPECT_EQ(Sample(text, "an1_queue_depth"), 0);
  EXPECT_GT(Sample(text, R"(an1_tensor_bytes_total{direction="in",transport="inline"})"), 0);
  EXPECT_NE(text.find("an1_build_info{"), std::string::npos);
  EXPECT_EQ(Sample(text, R"(an1_tokens_total{backend="baseline",rpc="Attention"})"), kOk * 5);
  // Every executed request counts under the kernel that ran it; refused ones ran none.
  EXPECT_EQ(
      Sample(text,
             R"(an1_kernel_runs_total{backend="baseline",kernel="baseline.cpu",rpc="Attention"})"),
      kOk);
  EXPECT_NE(text.find("# TYPE an1_kernel_runs_total counter"), std::string::npos);
  EXPECT_EQ(Sample(text, "an1_gpu_metrics_available"), 0);  // CPU only: no NVML readings
  EXPECT_NE(text.find("# TYPE an1_gpu_energy_joules_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE an1_gpu_power_watts gauge"), std::string::npos);
  EXPECT_EQ(text.find("an1_request_energy_joules_total{"), std::string::npos);
}

// Callers whose deadline passed while their requests waited hold neither queue slots nor
// in-flight bytes: a live caller is admitted at once, and the metrics count the abandoned calls
// under the code their clients received, with no backend (none ran them).
TEST(AbandonedRequestsTest, LeaveTheQueueAndAreCountedAsTheClientSawThem) {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "127.0.0.1:0";
  options.engine.disable_gpu = true;
  options.engine.cpu_threads = 2;
  options.engine.executor_threads = 1;
  options.engine.max_queue_depth = 4;
  auto started = server::An1Server::Start(options);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<server::An1Server> server = std::move(started).value();
  const std::string target = "127.0.0.1:" + std::to_string(server->port());
  std::mt19937_64 rng(7);
  auto attention = [&](int64_t s, int64_t h, int64_t d) {
    AttentionArgs args;
    args.q = Random({1, h, s, d}, v1::DTYPE_FP32, rng);
    args.k = Random({1, h, s, d}, v1::DTYPE_FP32, rng);
    args.v = Random({1, h, s, d}, v1::DTYPE_FP32, rng);
    args.causal = false;
    return args;
  };

  // Occupies the only executor for about a second or more.
  grpc::Status long_status;
  std::thread long_call([&] {
    client::Client client({target, 64 << 20, {}});
    CallResult result;
    long_status = client.Attention(attention(2048, 8, 64), &result);
  });
  // Until the long call runs (not just waits): its start can lag on a loaded machine.
  for (int i = 0; i < 1000; ++i) {
    const std::string text = testing::HttpGet(server->metrics_port(), "/metrics");
    if (Sample(text, "an1_requests_running") == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  constexpr int kAbandoned = 4;  // fills the queue, then every caller's deadline passes
  client::Client impatient({target, 64 << 20, std::chrono::milliseconds(30)});
  for (int i = 0; i < kAbandoned; ++i) {
    CallResult result;
    EXPECT_EQ(impatient.Attention(attention(4, 1, 8), &result).error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  client::Client patient({target, 64 << 20, {}});
  CallResult result;
  const grpc::Status live = patient.Attention(attention(4, 1, 8), &result);
  EXPECT_TRUE(live.ok()) << live.error_message();  // before the fix: the queue of cpu is full
  long_call.join();
  EXPECT_TRUE(long_status.ok()) << long_status.error_message();

  const std::string text = testing::HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(
      Sample(text,
             R"(an1_requests_total{backend="none",code="DEADLINE_EXCEEDED",rpc="Attention"})"),
      kAbandoned);
  EXPECT_EQ(Sample(text, R"(an1_requests_rejected_total{reason="deadline_exceeded"})"), kAbandoned);
  EXPECT_EQ(text.find(R"(code="CANCELLED")"), std::string::npos);
  EXPECT_EQ(text.find(R"(reason="cancelled")"), std::string::npos);
  EXPECT_EQ(Sample(text, R"(an1_requests_total{backend="baseline",code="OK",rpc="Attention"})"), 2);
  EXPECT_EQ(Sample(text, "an1_queue_depth"), 0);
}

TEST(ServerShutdownTest, InFlightRequestsFinishAndHealthTurnsNotServing) {
  auto server = StartServer();
  const std::string target = "127.0.0.1:" + std::to_string(server->port());
  client::Client client({target, 64 << 20, {}});
  std::mt19937_64 rng(1);
  // A request that takes a while on two CPU threads, started before the shutdown.
  AttentionArgs args;
  args.q = Random({1, 8, 512, 64}, v1::DTYPE_FP32, rng);
  args.k = Random({1, 8, 512, 64}, v1::DTYPE_FP32, rng);
  args.v = Random({1, 8, 512, 64}, v1::DTYPE_FP32, rng);
  // A health watcher sees SERVING, then NOT_SERVING when the drain starts.
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto watch = health->Watch(&watch_context, grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  grpc::Status in_flight;
  std::thread caller([&] {
    CallResult result;
    in_flight = client.Attention(std::move(args), &result);
  });
  while (server->engine().running() == 0 && server->engine().queue_depth() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::thread stopper([&] { server->Shutdown(std::chrono::seconds(30)); });
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  watch_context.TryCancel();
  caller.join();
  stopper.join();
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_message();
  bool serving = true;
  EXPECT_FALSE(client.Health(&serving).ok());  // the listener is closed
  EXPECT_FALSE(serving);
}

// An open health Watch stream (as Envoy or gRPC client-side health checking keeps) ends when the
// drain starts, so a stop with nothing in flight completes at once instead of waiting out the
// whole grace period (issue 18).
TEST(ServerShutdownTest, OpenHealthWatchesDoNotHoldTheStop) {
  auto server = StartServer();
  const std::string target = "127.0.0.1:" + std::to_string(server->port());
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext watch_context;
  auto watch = health->Watch(&watch_context, grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  const auto start = std::chrono::steady_clock::now();
  server->Shutdown(std::chrono::seconds(20));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 5.0) << "the stop waited for the Watch stream";
  // The stream saw NOT_SERVING last, then ended.
  grpc::health::v1::HealthCheckResponse::ServingStatus last = update.status();
  while (watch->Read(&update)) last = update.status();
  EXPECT_EQ(last, grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_TRUE(watch->Finish().ok());
}

// The health service's names: the server ("") and an1.v1.An1 are served; others are unknown.
TEST(ServerHealthTest, CheckKnowsTheServedNames) {
  auto server = StartServer();
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials()));
  for (const char* name : {"", "an1.v1.An1", "no.such.Service"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(name);
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = health->Check(&context, request, &response);
    if (std::string(name) == "no.such.Service") {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    } else {
      ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
      EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << name;
    }
  }
}

// Connection management (issue 18): a connection older than --max-connection-age-seconds gets
// GOAWAY, so its client reconnects (and, behind a load balancer, may reach a newer replica);
// request metadata over --max-metadata-bytes is refused. gRPC's defaults have neither limit.
TEST(ServerConnectionTest, OldConnectionsAreRecycledAndLargeMetadataRefused) {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.engine.disable_gpu = true;
  options.connections.max_age_seconds = 1;
  options.connections.max_age_grace_seconds = 1;
  options.connections.max_metadata_bytes = 4096;
  auto started = server::An1Server::Start(options);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto server = std::move(started).value();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  auto check = [&](const std::string& metadata) {
    grpc::ClientContext context;
    if (metadata.empty()) {
      // A plain check may follow a refused call that reset the connection: it waits (up to 10 s)
      // for the channel to reconnect instead of failing on the transient state.
      context.set_wait_for_ready(true);
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    }
    if (!metadata.empty()) context.AddMetadata("x-filler", metadata);
    grpc::health::v1::HealthCheckResponse response;
    return health->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  };
  ASSERT_TRUE(check("").ok());
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // Age 1 s (+10% jitter) + grace 1 s; polled up to 15 s, since timers run late on a loaded
  // machine (tests run in parallel).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  while (channel->GetState(false) == GRPC_CHANNEL_READY &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(channel->GetState(false), GRPC_CHANNEL_READY) << "the connection outlived its age";
  // Every connection here is recycled after about a second, so a plain call can meet a GOAWAY or
  // the reset of the refused call's connection and fail with UNAVAILABLE, as any client may on
  // a recycled connection; it retries, as clients do. The server must answer within 10 s.
  auto serves = [&] {
    grpc::Status last;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    do {
      last = check("");
      if (last.ok()) return last;
    } while (last.error_code() == grpc::StatusCode::UNAVAILABLE &&
             std::chrono::steady_clock::now() < until);
    return last;
  };
  grpc::Status status = serves();  // a new connection serves
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_FALSE(check(std::string(6000, 'x')).ok());
  status = serves();
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
}

TEST(ServerStartTest, PortInUseIsAnError) {
  auto first = StartServer();
  server::ServerOptions options;
  options.listen = "127.0.0.1:" + std::to_string(first->port());
  options.metrics_listen = "";
  options.engine.disable_gpu = true;
  auto second = server::An1Server::Start(options);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
}

// A fresh path for a Unix socket under the temporary directory.
std::string UnixSocketPath(const char* name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/an1-test-" +
         std::to_string(getpid()) + "-" + name + ".sock";
}

std::unique_ptr<server::An1Server> StartUnixServer(const std::string& path) {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.listen_unix = path;
  options.metrics_listen = "";
  options.engine.disable_gpu = true;
  options.engine.cpu_threads = 2;
  auto server = server::An1Server::Start(options);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

TEST(ServerUnixSocketTest, ServesTheSameServiceBesideTcp) {
  const std::string path = UnixSocketPath("serves");
  auto server = StartUnixServer(path);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->unix_socket_path(), path);
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0666u);

  client::Client tcp(client::ClientOptions{"127.0.0.1:" + std::to_string(server->port())});
  client::Client unix_socket(client::ClientOptions{"unix:" + path});
  bool serving = false;
  ASSERT_TRUE(unix_socket.Health(&serving).ok());
  EXPECT_TRUE(serving);
  v1::GetServerInfoResponse info;
  ASSERT_TRUE(unix_socket.Info(&info).ok());
  EXPECT_EQ(info.grpc_unix_socket(), path);

  std::mt19937_64 rng(7);
  AttentionArgs args;
  args.q = Random({1, 4, 5, 8}, v1::DTYPE_FP32, rng);
  args.k = Random({1, 2, 7, 8}, v1::DTYPE_FP32, rng);
  args.v = Random({1, 2, 7, 8}, v1::DTYPE_FP32, rng);
  CallResult over_tcp, over_unix;
  ASSERT_TRUE(tcp.Attention(args, &over_tcp).ok());
  grpc::Status status = unix_socket.Attention(args, &over_unix);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(over_unix.output.bytes, over_tcp.output.bytes);
  EXPECT_EQ(over_unix.output.shape, over_tcp.output.shape);
  // Bad input is refused over the socket as over TCP.
  args.q.shape = {1, 4, 5, 9};
  EXPECT_EQ(unix_socket.Attention(args, &over_unix).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  server.reset();
  EXPECT_NE(lstat(path.c_str(), &st), 0) << "the socket file outlived the server";
}

TEST(ServerUnixSocketTest, PathInUseIsAnErrorAndAStaleOneIsReplaced) {
  const std::string path = UnixSocketPath("in-use");
  auto first = StartUnixServer(path);
  ASSERT_NE(first, nullptr);
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.listen_unix = path;
  options.metrics_listen = "";
  options.engine.disable_gpu = true;
  auto second = server::An1Server::Start(options);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("another server"), std::string::npos)
      << second.status().message();
  // The first still serves there.
  bool serving = false;
  EXPECT_TRUE(client::Client(client::ClientOptions{"unix:" + path}).Health(&serving).ok());
  EXPECT_TRUE(serving);
  first.reset();

  // A socket file nobody serves on (a server that died) does not stop a new server.
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  close(fd);
  auto third = StartUnixServer(path);
  ASSERT_NE(third, nullptr);
  EXPECT_TRUE(client::Client(client::ClientOptions{"unix:" + path}).Health(&serving).ok());

  options.listen_unix = std::string(200, 'x');
  EXPECT_EQ(server::An1Server::Start(options).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace an1
