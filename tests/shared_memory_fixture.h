// The fixture of the shared-memory end-to-end tests: a real server on loopback, the real client
// library, real POSIX shared memory objects (shared_memory_test.cc, client_id_test.cc).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "client/client.h"
#include "client/elements.h"
#include "server/engine_call.h"
#include "server/server.h"
#include "tests/reference.h"

namespace an1::testing {

using client::AttentionArgs;
using client::CallResult;
using client::HostTensor;

// A POSIX shared memory object, created, mapped and removed by the test.
class ShmObject {
 public:
  explicit ShmObject(std::size_t bytes)
      : key_("/an1-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++)),
        bytes_(bytes) {
    fd_ = shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0);
    data_ =
        static_cast<std::byte*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    EXPECT_NE(data_, MAP_FAILED);
  }
  ~ShmObject() {
    munmap(data_, bytes_);
    close(fd_);
    shm_unlink(key_.c_str());
  }
  const std::string& key() const { return key_; }
  std::byte* data() { return data_; }
  void Truncate(std::size_t bytes) { EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0); }

 private:
  static inline int counter_ = 0;
  std::string key_;
  std::size_t bytes_;
  int fd_ = -1;
  std::byte* data_ = nullptr;
};

v1::RegionRef Ref(const std::string& region, uint64_t offset, uint64_t size) {
  return client::MakeRegionRef(region, offset, size);
}

class SharedMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(true); }

  void Start(bool enabled, int max_regions = 64, uint64_t max_message_bytes = 0,
             int max_regions_total = 256, int idle_expiry_seconds = 3600) {
    server::ServerOptions options;
    options.shared_memory.idle_expiry_seconds = idle_expiry_seconds;
    options.shared_memory.max_regions_total = max_regions_total;
    if (max_message_bytes > 0) options.max_message_bytes = max_message_bytes;
    options.shared_memory.max_regions_per_client = max_regions;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.engine.disable_gpu = true;
    options.engine.cpu_threads = 2;
    options.shared_memory.enabled = enabled;
    auto server = server::An1Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    alice_ = MakeClient("alice");
    bob_ = MakeClient("bob");
  }

  std::unique_ptr<client::Client> MakeClient(const std::string& id) {
    client::ClientOptions options;
    options.target = "127.0.0.1:" + std::to_string(server_->port());
    options.client_id = id;
    return std::make_unique<client::Client>(options);
  }

  // fp32 attention (1, 2, Sq, D) x (1, 1, Sk, D) with q, k, v and the output in one region.
  struct Layout {
    int64_t sq = 9, sk = 13, d = 8;
    uint64_t q_bytes() const { return 2 * sq * d * 4; }
    uint64_t kv_bytes() const { return sk * d * 4; }
    uint64_t total() const { return 2 * q_bytes() + 2 * kv_bytes(); }
  };

  AttentionArgs RegionArgs(const Layout& l, const std::string& region) {
    AttentionArgs args;
    args.q = {v1::DTYPE_FP32, {1, 2, l.sq, l.d}, "", Ref(region, 0, l.q_bytes())};
    args.k = {v1::DTYPE_FP32, {1, 1, l.sk, l.d}, "", Ref(region, l.q_bytes(), l.kv_bytes())};
    args.v = {v1::DTYPE_FP32,
              {1, 1, l.sk, l.d},
              "",
              Ref(region, l.q_bytes() + l.kv_bytes(), l.kv_bytes())};
    args.output_region = Ref(region, l.q_bytes() + 2 * l.kv_bytes(), l.q_bytes());
    return args;
  }

  void ExpectServing() {
    CallResult result;
    AttentionArgs args;
    std::string bytes(4 * 4, '\0');
    args.q = args.k = args.v = {v1::DTYPE_FP32, {1, 1, 1, 4}, bytes, {}};
    grpc::Status status = alice_->Attention(std::move(args), &result);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  std::unique_ptr<server::An1Server> server_;
  std::unique_ptr<client::Client> alice_, bob_;
};

}  // namespace an1::testing
