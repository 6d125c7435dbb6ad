// Shared memory regions end to end: a real server on loopback, the real client library, real
// POSIX shared memory objects. Tensors in and outputs out of regions, and every misuse answered
// with its status code while the server keeps serving.
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

namespace an1 {
namespace {

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

  void Start(bool enabled, int max_regions = 64) {
    server::ServerOptions options;
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

TEST_F(SharedMemoryTest, InputsAndOutputInARegionMatchTheReference) {
  Layout l;
  ShmObject shm(l.total());
  std::mt19937_64 rng(4);
  const std::vector<float> q = testing::RandomFloats(2 * l.sq * l.d, rng),
                           k = testing::RandomFloats(l.sk * l.d, rng),
                           v = testing::RandomFloats(l.sk * l.d, rng);
  std::memcpy(shm.data(), q.data(), l.q_bytes());
  std::memcpy(shm.data() + l.q_bytes(), k.data(), l.kv_bytes());
  std::memcpy(shm.data() + l.q_bytes() + l.kv_bytes(), v.data(), l.kv_bytes());
  std::memset(shm.data() + l.q_bytes() + 2 * l.kv_bytes(), 0xff, l.q_bytes());  // poison

  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("tensors", shm.key(), 0, l.total()).ok());
  v1::ListSharedMemoryResponse list;
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  ASSERT_EQ(list.regions_size(), 1);
  EXPECT_EQ(list.regions(0).name(), "tensors");

  CallResult result;
  grpc::Status status = alice_->Attention(RegionArgs(l, "tensors"), &result);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(result.output.region.has_value());
  EXPECT_TRUE(result.output.bytes.empty());
  std::vector<float> got(2 * l.sq * l.d);
  std::memcpy(got.data(), shm.data() + l.q_bytes() + 2 * l.kv_bytes(), l.q_bytes());
  const auto want =
      testing::ReferenceAttention({1, 2, 1, l.sq, l.sk, l.d}, q, k, v, true, 1.0 / std::sqrt(8.0));
  EXPECT_LE(testing::RelativeError(got, want), 1e-5);

  ASSERT_TRUE(alice_->UnregisterSharedMemory("tensors").ok());
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 0);
}

// With the output in a region, the log-sum-exp still comes back inline in the response.
TEST_F(SharedMemoryTest, LseComesBackInlineWhenTheOutputGoesToARegion) {
  Layout l;
  ShmObject shm(l.total());
  std::mt19937_64 rng(5);
  const std::vector<float> q = testing::RandomFloats(2 * l.sq * l.d, rng),
                           k = testing::RandomFloats(l.sk * l.d, rng),
                           v = testing::RandomFloats(l.sk * l.d, rng);
  std::memcpy(shm.data(), q.data(), l.q_bytes());
  std::memcpy(shm.data() + l.q_bytes(), k.data(), l.kv_bytes());
  std::memcpy(shm.data() + l.q_bytes() + l.kv_bytes(), v.data(), l.kv_bytes());
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("lse", shm.key(), 0, l.total()).ok());

  AttentionArgs args = RegionArgs(l, "lse");
  args.return_lse = true;
  CallResult result;
  grpc::Status status = alice_->Attention(std::move(args), &result);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(result.output.region.has_value());
  ASSERT_TRUE(result.lse.has_value());
  EXPECT_FALSE(result.lse->region.has_value());
  EXPECT_EQ(result.lse->shape, (std::vector<int64_t>{1, 2, l.sq}));
  const testing::AttentionCase c{1, 2, 1, l.sq, l.sk, l.d};
  EXPECT_EQ(
      testing::CompareLse(client::DecodeElements(result.lse->bytes, v1::DTYPE_FP32),
                          testing::ReferenceLse(c, q, k, true, 1.0 / std::sqrt(8.0)), 1e-4, 1e-5),
      "");
  ASSERT_TRUE(alice_->UnregisterSharedMemory("lse").ok());
}

TEST_F(SharedMemoryTest, RegistrationErrors) {
  ShmObject shm(4096);
  EXPECT_EQ(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 4097).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // beyond the object's real size
  EXPECT_EQ(alice_->RegisterSystemSharedMemory("r", shm.key(), UINT64_MAX - 8, 16).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // offset + size overflows
  EXPECT_EQ(alice_->RegisterSystemSharedMemory("a/b", shm.key(), 0, 16).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(alice_->RegisterSystemSharedMemory("an1-internal", shm.key(), 0, 16).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(alice_->RegisterSystemSharedMemory("r", "no-slash", 0, 16).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  const grpc::Status missing =
      alice_->RegisterSystemSharedMemory("r", "/an1-test-does-not-exist", 0, 16);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message().find("does-not-exist"), std::string::npos)
      << "the key must not be echoed";
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 4096).ok());
  EXPECT_EQ(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 16).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(alice_->UnregisterSharedMemory("unknown").error_code(), grpc::StatusCode::NOT_FOUND);
  auto anonymous = MakeClient("");
  EXPECT_EQ(anonymous->RegisterSystemSharedMemory("x", shm.key(), 0, 16).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ExpectServing();
}

TEST_F(SharedMemoryTest, RegionsBelongToTheirClient) {
  ShmObject shm(4096);
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("mine", shm.key(), 0, 4096).ok());
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("mine2", shm.key(), 0, 1024).ok());
  ASSERT_TRUE(bob_->RegisterSystemSharedMemory("mine", shm.key(), 0, 512).ok());  // own namespace
  EXPECT_EQ(bob_->UnregisterSharedMemory("mine2").error_code(), grpc::StatusCode::NOT_FOUND);
  CallResult result;
  Layout l;
  grpc::Status used = bob_->Attention(RegionArgs(l, "mine2"), &result);
  EXPECT_EQ(used.error_code(), grpc::StatusCode::NOT_FOUND);
  uint32_t removed = 0;
  ASSERT_TRUE(bob_->UnregisterAllSharedMemory(&removed).ok());
  EXPECT_EQ(removed, 1u);
  v1::ListSharedMemoryResponse list;
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 2);
}

TEST_F(SharedMemoryTest, OutOfBoundsRangesAreInvalidArgument) {
  Layout l;
  ShmObject shm(l.total());
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("t", shm.key(), 0, l.total()).ok());
  const uint64_t size = l.total();
  const std::vector<std::pair<uint64_t, uint64_t>> bad = {
      {size - l.q_bytes() + 1, l.q_bytes()},  // ends one byte past the region
      {size, l.q_bytes()},                    // starts at the end
      {size + 100, l.q_bytes()},              // starts past the end
      {UINT64_MAX - 4, l.q_bytes()},          // offset + size overflows
  };
  for (const auto& [offset, bytes] : bad) {
    AttentionArgs args = RegionArgs(l, "t");
    args.q.region = Ref("t", offset, bytes);
    CallResult result;
    grpc::Status status = alice_->Attention(std::move(args), &result);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << offset << ": " << status.error_message();
  }
  AttentionArgs small_output = RegionArgs(l, "t");
  small_output.output_region = Ref("t", 0, l.q_bytes() - 1);
  CallResult result;
  grpc::Status status = alice_->Attention(std::move(small_output), &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("output"), std::string::npos);
  ExpectServing();
}

TEST_F(SharedMemoryTest, TruncatedObjectIsAnErrorNotACrash) {
  Layout l;
  ShmObject shm(l.total());
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("t", shm.key(), 0, l.total()).ok());
  shm.Truncate(16);
  CallResult result;
  grpc::Status status = alice_->Attention(RegionArgs(l, "t"), &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_NE(status.error_message().find("truncated"), std::string::npos);
  ExpectServing();
}

TEST_F(SharedMemoryTest, UnregisterDuringAnInFlightRequestWaitsForIt) {
  // A long CPU request reading and writing the region; unregistering returns at once.
  Layout l;
  l.sq = 4096;
  l.sk = 4096;
  l.d = 64;
  ShmObject shm(l.total());
  std::memset(shm.data(), 0, l.total());
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("t", shm.key(), 0, l.total()).ok());
  grpc::Status in_flight;
  std::thread caller([&] {
    CallResult result;
    in_flight = alice_->Attention(RegionArgs(l, "t"), &result);
  });
  while (server_->engine().running() == 0 && server_->engine().queue_depth() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(alice_->UnregisterSharedMemory("t").ok());
  caller.join();
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_message();
  CallResult result;
  EXPECT_EQ(alice_->Attention(RegionArgs(l, "t"), &result).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(SharedMemoryTest, CudaRegionsNeedAGpuAndA64ByteHandle) {
  // This server runs without a GPU (as in CI): a well-formed handle is refused with the reason.
  grpc::Status status = alice_->RegisterCudaSharedMemory("g", std::string(64, '\x01'), 0, 1024);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_NE(status.error_message().find("GPU 0"), std::string::npos);
  EXPECT_EQ(alice_->RegisterCudaSharedMemory("g", "short", 0, 1024).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(alice_->RegisterCudaSharedMemory("an1-g", std::string(64, '\0'), 0, 1).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ExpectServing();
}

TEST_F(SharedMemoryTest, RegionsPerClientAreLimited) {
  Start(true, /*max_regions=*/2);
  ShmObject shm(4096);
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r1", shm.key(), 0, 16).ok());
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r2", shm.key(), 0, 16).ok());
  EXPECT_EQ(alice_->RegisterSystemSharedMemory("r3", shm.key(), 0, 16).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(bob_->RegisterSystemSharedMemory("r1", shm.key(), 0, 16).ok());  // per client
  ASSERT_TRUE(alice_->UnregisterSharedMemory("r1").ok());
  EXPECT_TRUE(alice_->RegisterSystemSharedMemory("r3", shm.key(), 0, 16).ok());
}

TEST_F(SharedMemoryTest, DisabledByTheServer) {
  Start(false);
  ShmObject shm(4096);
  grpc::Status status = alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 4096);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("disabled"), std::string::npos);
  Layout l;
  CallResult result;
  EXPECT_EQ(alice_->Attention(RegionArgs(l, "r"), &result).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ExpectServing();
}

// Client identities: the `an1-client-id` entry is compared whole or refused, never cut short.
class ClientIdTest : public SharedMemoryTest {
 protected:
  // A raw stub: the metadata exactly as given, entries repeated or empty included.
  std::unique_ptr<v1::An1::Stub> RawStub() {
    return v1::An1::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                                grpc::InsecureChannelCredentials()));
  }

  static void ExpectUnauthenticated(const grpc::Status& status, const std::string& why,
                                    const std::string& what) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(why), std::string::npos)
        << what << ": the message says what is wrong: " << status.error_message();
  }

  // Every region call of `client` is refused as UNAUTHENTICATED, the message containing `why`.
  void ExpectEveryRegionCallRefused(client::Client& client, const std::string& shm_key,
                                    const std::string& why) {
    ExpectUnauthenticated(client.RegisterSystemSharedMemory("r", shm_key, 0, 16), why, "register");
    ExpectUnauthenticated(client.RegisterCudaSharedMemory("g", std::string(64, '\x01'), 0, 16), why,
                          "register cuda");
    ExpectUnauthenticated(client.UnregisterSharedMemory("r"), why, "unregister");
    uint32_t removed = 0;
    ExpectUnauthenticated(client.UnregisterAllSharedMemory(&removed), why, "unregister all");
    v1::ListSharedMemoryResponse list;
    ExpectUnauthenticated(client.ListSharedMemory(&list), why, "list");
    Layout l;
    CallResult result;
    ExpectUnauthenticated(client.Attention(RegionArgs(l, "r"), &result), why, "attention");
    AttentionArgs output_only;  // inline inputs, the output placed in a region
    std::string bytes(4 * 4, '\0');
    output_only.q = output_only.k = output_only.v = {v1::DTYPE_FP32, {1, 1, 1, 4}, bytes, {}};
    output_only.output_region = Ref("r", 0, 16);
    ExpectUnauthenticated(client.Attention(std::move(output_only), &result), why,
                          "attention output");
    client::MatmulArgs matmul;
    matmul.a = {v1::DTYPE_FP32, {1, 1}, "", Ref("r", 0, 4)};
    matmul.b = {v1::DTYPE_FP32, {1, 1}, std::string(4, '\0'), {}};
    ExpectUnauthenticated(client.Matmul(std::move(matmul), &result), why, "matmul");
  }

  // An inline request (no region anywhere) works with or without an id.
  static void ExpectInlineServed(client::Client& client) {
    CallResult result;
    AttentionArgs args;
    std::string bytes(4 * 4, '\0');
    args.q = args.k = args.v = {v1::DTYPE_FP32, {1, 1, 1, 4}, bytes, {}};
    grpc::Status status = client.Attention(std::move(args), &result);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
};

TEST_F(ClientIdTest, LongIdsDifferingAfter256CharactersAreNotOneClient) {
  // Once cut to 256 characters these two were the same client: B saw and removed A's region.
  const std::string prefix(256, 'p');
  auto a = MakeClient(prefix + "-alice");
  auto b = MakeClient(prefix + "-bob");
  ShmObject shm(4096);
  ExpectUnauthenticated(a->RegisterSystemSharedMemory("mine", shm.key(), 0, 4096), "128",
                        "an over-long id is refused, not truncated");
  v1::ListSharedMemoryResponse list;
  grpc::Status listed = b->ListSharedMemory(&list);
  EXPECT_EQ(listed.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list.regions_size(), 0) << "B must never see A's region";
  uint32_t removed = 0;
  EXPECT_EQ(b->UnregisterAllSharedMemory(&removed).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(removed, 0u) << "B must never remove A's region";

  // At the limit, ids differing in their last byte are two clients.
  const std::string at_limit(127, 'q');
  auto a128 = MakeClient(at_limit + "a");
  auto b128 = MakeClient(at_limit + "b");
  ASSERT_TRUE(a128->RegisterSystemSharedMemory("mine", shm.key(), 0, 4096).ok());
  ASSERT_TRUE(b128->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 0);
  EXPECT_EQ(b128->UnregisterSharedMemory("mine").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(b128->UnregisterAllSharedMemory(&removed).ok());
  EXPECT_EQ(removed, 0u);
  Layout l;
  CallResult result;
  EXPECT_EQ(b128->Attention(RegionArgs(l, "mine"), &result).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(a128->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 1);
  ExpectServing();
}

TEST_F(ClientIdTest, OverLongIdIsRefusedOnEveryRegionCall) {
  ShmObject shm(4096);
  auto long_id = MakeClient(std::string(129, 'x'));
  ExpectEveryRegionCallRefused(*long_id, shm.key(), "128");
  ExpectInlineServed(*long_id);  // no region: the id is not used
  ExpectServing();
}

TEST_F(ClientIdTest, MissingIdIsRefusedOnEveryRegionCall) {
  ShmObject shm(4096);
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 16).ok());
  auto anonymous = MakeClient("");  // sends no an1-client-id entry
  ExpectEveryRegionCallRefused(*anonymous, shm.key(), "an1-client-id");
  ExpectInlineServed(*anonymous);
  v1::ListSharedMemoryResponse list;
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 1);
}

TEST_F(ClientIdTest, BlankIdIsRefusedOnEveryRegionCall) {
  ShmObject shm(4096);
  // Spaces around an id are refused too: a proxy trimming them would merge two clients.
  for (const std::string id : {" ", "   ", " alice", "alice "}) {
    auto blank = MakeClient(id);
    ExpectEveryRegionCallRefused(*blank, shm.key(), "an1-client-id");
    ExpectInlineServed(*blank);
  }
  ExpectServing();
}

TEST_F(ClientIdTest, EmptyOrRepeatedEntryIsRefused) {
  auto stub = RawStub();
  ShmObject shm(4096);
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 16).ok());
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"alice", "alice"}, "more than once"},
      {{"alice", "bob"}, "more than once"},
      {{""}, "empty"},
  };
  for (const auto& [values, why] : cases) {
    const std::string what =
        "entries: " + std::to_string(values.size()) + ", first '" + values.front() + "'";
    auto with_ids = [&values = values](grpc::ClientContext* context) {
      for (const std::string& value : values) context->AddMetadata("an1-client-id", value);
    };
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::ListSharedMemoryResponse list;
      ExpectUnauthenticated(stub->ListSharedMemory(&context, {}, &list), why, what + " list");
      EXPECT_EQ(list.regions_size(), 0) << what;
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::RegisterSystemSharedMemoryRequest request;
      request.set_name("r2");
      request.set_key(shm.key());
      request.set_byte_size(16);
      v1::RegisterSharedMemoryResponse response;
      ExpectUnauthenticated(stub->RegisterSystemSharedMemory(&context, request, &response), why,
                            what + " register");
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::UnregisterSharedMemoryRequest request;
      request.set_all(true);
      v1::UnregisterSharedMemoryResponse response;
      ExpectUnauthenticated(stub->UnregisterSharedMemory(&context, request, &response), why,
                            what + " unregister all");
      EXPECT_EQ(response.unregistered(), 0u) << what;
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::UnregisterSharedMemoryRequest request;
      request.set_name("r");
      v1::UnregisterSharedMemoryResponse response;
      ExpectUnauthenticated(stub->UnregisterSharedMemory(&context, request, &response), why,
                            what + " unregister");
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::MatmulRequest request;
      for (v1::Tensor* t : {request.mutable_a(), request.mutable_b()}) {
        t->set_dtype(v1::DTYPE_FP32);
        t->add_shape(1);
        t->add_shape(1);
      }
      *request.mutable_a()->mutable_region() = Ref("r", 0, 4);
      request.mutable_b()->set_inline_data(std::string(4, '\0'));
      v1::MatmulResponse response;
      ExpectUnauthenticated(stub->Matmul(&context, request, &response), why, what + " matmul");
    }
  }
  v1::ListSharedMemoryResponse list;
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  ASSERT_EQ(list.regions_size(), 1) << "alice's region is untouched";
  EXPECT_EQ(list.regions(0).name(), "r");
  ExpectServing();
}

// The rule itself, including what gRPC clients cannot send (control characters, non-ASCII).
TEST(ClientIdRuleTest, AcceptsExactlyOnePrintableIdUpToTheLimit) {
  const auto parse = [](const std::vector<std::string>& values) {
    std::multimap<grpc::string_ref, grpc::string_ref> metadata;
    metadata.emplace("an1-other", "x");
    for (const std::string& value : values) metadata.emplace("an1-client-id", value);
    return server::ClientId(metadata);
  };
  const std::string longest(server::kMaxClientIdBytes, 'z');
  for (const std::string id : {std::string("alice"), std::string("a b"), std::string("~!{}"),
                               longest, std::string(1, 'x')}) {
    const StatusOr<std::string> parsed = parse({id});
    ASSERT_TRUE(parsed.ok()) << id << ": " << parsed.status().ToString();
    EXPECT_EQ(*parsed, id) << "taken whole";
  }
  const std::vector<std::pair<std::vector<std::string>, std::string>> refused = {
      {{}, "needs an 'an1-client-id'"},
      {{"alice", "alice"}, "more than once"},
      {{"alice", "bob", "carol"}, "3 times"},
      {{""}, "empty"},
      {{longest + "z"}, "129 bytes, more than the limit of 128"},
      {{std::string(300, 'p') + "-alice"}, "limit of 128"},
      {{" "}, "blank"},
      {{"  "}, "blank"},
      {{" alice"}, "space"},
      {{"alice "}, "space"},
      {{"\t"}, "control character"},
      {{"al\nice"}, "control character"},
      {{std::string("al\0ice", 6)}, "control character"},
      {{"alice\x7f"}, "control character"},
      {{"\xc3\xa9"}, "outside printable ASCII"},
  };
  for (const auto& [values, why] : refused) {
    const StatusOr<std::string> parsed = parse(values);
    ASSERT_FALSE(parsed.ok()) << why;
    EXPECT_EQ(parsed.status().code(), StatusCode::kUnauthenticated) << why;
    EXPECT_NE(parsed.status().message().find(why), std::string::npos) << parsed.status().message();
  }
}

}  // namespace
}  // namespace an1
