// PagedAttention through the real server and client on the CPU: a ragged batch against the float64
// reference, the append written back into the caller's shared memory (the appended slots only),
// refusals with their status codes, and a fuzz of the index tensors: every answer OK or
// INVALID_ARGUMENT, and the server healthy afterwards.
#include <gtest/gtest.h>

#include <cstring>

#include "client/client.h"
#include "client/shared_memory.h"
#include "server/server.h"
#include "tests/paged_case.h"

namespace an1 {
namespace {

using client::CallResult;
using client::HostTensor;
using client::PagedAttentionArgs;
using testing::PagedCase;
using testing::PagedData;

template <typename T>
HostTensor Tensor(v1::DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  HostTensor t{dtype, std::move(shape), std::string(values.size() * sizeof(T), '\0'), {}};
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

PagedAttentionArgs Args(const PagedCase& c, const PagedData& d) {
  const auto batch = static_cast<int64_t>(c.kv_lens.size());
  const std::vector<int64_t> cache{d.num_pages, c.page_size, c.kv_heads, c.head_dim};
  PagedAttentionArgs a;
  a.q = Tensor(v1::DTYPE_FP32, {d.total_q, c.heads, c.head_dim}, d.q.values);
  a.cu_seqlens_q = Tensor(v1::DTYPE_INT32, {batch + 1}, d.cu_seqlens);
  a.k_cache = Tensor(v1::DTYPE_FP32, cache, d.k_cache.values);
  a.v_cache = Tensor(v1::DTYPE_FP32, cache, d.v_cache.values);
  a.page_table = Tensor(v1::DTYPE_INT32, {batch, d.max_pages}, d.page_table);
  a.kv_lens = Tensor(v1::DTYPE_INT32, {batch}, d.kv_lens);
  if (c.append) {
    a.k_new = Tensor(v1::DTYPE_FP32, {d.total_q, c.kv_heads, c.head_dim}, d.k_new.values);
    a.v_new = Tensor(v1::DTYPE_FP32, {d.total_q, c.kv_heads, c.head_dim}, d.v_new.values);
  }
  a.causal = c.causal;
  a.window_left = c.window_left;
  a.window_right = c.window_right;
  a.softcap = c.softcap;
  a.return_lse = true;
  return a;
}

class PagedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.engine.disable_gpu = true;
    options.engine.cpu_threads = 2;
    auto server = server::An1Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    client_ = std::make_unique<client::Client>(client::ClientOptions{
        "127.0.0.1:" + std::to_string(server_->port()), 64 << 20, {}, "paged-test"});
  }
  void ExpectCorrect(const PagedCase& c, const PagedData& d, const CallResult& result) {
    std::vector<double> want_lse;
    const std::vector<double> want =
        testing::ReferencePaged(c, d, 1.0 / std::sqrt(double(c.head_dim)), &want_lse);
    std::vector<float> got(want.size()), lse(want_lse.size());
    ASSERT_EQ(result.output.bytes.size(), got.size() * 4);
    std::memcpy(got.data(), result.output.bytes.data(), result.output.bytes.size());
    ASSERT_TRUE(result.lse.has_value());
    ASSERT_EQ(result.lse->bytes.size(), lse.size() * 4);
    std::memcpy(lse.data(), result.lse->bytes.data(), result.lse->bytes.size());
    EXPECT_LE(testing::RelativeError(got, want), 1e-5);
    EXPECT_EQ(testing::CompareLse(lse, want_lse, 1e-4, 1e-5), "");
    EXPECT_EQ(result.info.kernel(), "baseline.cpu");
    EXPECT_EQ(result.info.tokens(), static_cast<uint64_t>(d.total_q));
  }

  static server::An1Server* server_;
  std::unique_ptr<client::Client> client_;
};

server::An1Server* PagedServerTest::server_ = nullptr;

TEST_F(PagedServerTest, RaggedBatchInline) {
  PagedCase c;
  c.kv_lens = {1, 131, 17, 40};
  c.q_lens = {1, 29, 0, 1};
  c.window_left = 50;
  c.softcap = 5;
  std::mt19937_64 rng(1);
  const PagedData d = testing::MakePagedData(c, DType::kFloat32, rng);
  CallResult result;
  const grpc::Status status = client_->PagedAttention(Args(c, d), &result);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectCorrect(c, d, result);
}

// A client that polls for its responses (ClientOptions::poll_us) gets the same answers and
// errors, both when the response comes while it polls and when it has gone to sleep.
TEST_F(PagedServerTest, PollingClientGetsTheSameAnswersAndErrors) {
  PagedCase c;
  c.kv_lens = {1, 131, 17, 40};
  c.q_lens = {1, 29, 0, 1};
  std::mt19937_64 rng(2);
  const PagedData d = testing::MakePagedData(c, DType::kFloat32, rng);
  for (int poll_us : {1, 1000000}) {
    SCOPED_TRACE("poll_us " + std::to_string(poll_us));
    client::ClientOptions options{
        "127.0.0.1:" + std::to_string(server_->port()), 64 << 20, {}, "paged-poll-test"};
    options.poll_us = poll_us;
    client::Client polling(options);
    for (int call = 0; call < 3; ++call) {
      CallResult result;
      const grpc::Status status = polling.PagedAttention(Args(c, d), &result);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ExpectCorrect(c, d, result);
    }
    PagedAttentionArgs bad_page = Args(c, d);
    reinterpret_cast<int32_t*>(bad_page.page_table.bytes.data())[d.max_pages + 1] = -3;
    CallResult result;
    EXPECT_EQ(polling.PagedAttention(bad_page, &result).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(PagedServerTest, AppendIsWrittenBackIntoSharedMemory) {
  PagedCase c;
  c.kv_lens = {37, 5, 64};
  c.q_lens = {4, 1, 16};
  c.heads = 10;  // GQA group 5
  c.append = true;
  std::mt19937_64 rng(2);
  const PagedData d = testing::MakePagedData(c, DType::kFloat32, rng);
  PagedAttentionArgs args = Args(c, d);

  // Inline caches: the append would be lost, so it is refused.
  CallResult result;
  grpc::Status status = client_->PagedAttention(args, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("shared memory region"), std::string::npos);

  const std::size_t cache_bytes = args.k_cache.bytes.size();
  std::string error;
  auto region = client::SharedRegion::Create(*client_, 2 * cache_bytes, &error);
  ASSERT_NE(region, nullptr) << error;
  std::memcpy(region->data(), args.k_cache.bytes.data(), cache_bytes);
  std::memcpy(region->data() + cache_bytes, args.v_cache.bytes.data(), cache_bytes);
  args.k_cache.region = region->Ref(0, cache_bytes);
  args.v_cache.region = region->Ref(cache_bytes, cache_bytes);
  args.k_cache.bytes.clear();
  args.v_cache.bytes.clear();
  status = client_->PagedAttention(args, &result);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectCorrect(c, d, result);

  // The caller's caches now hold k_new and v_new at the appended slots, and nothing else changed.
  std::vector<float> k_want = d.k_cache.values, v_want = d.v_cache.values;
  const int64_t slot = c.kv_heads * c.head_dim;
  for (std::size_t b = 0; b < c.kv_lens.size(); ++b) {
    for (int32_t l = 0; l < c.q_lens[b]; ++l) {
      const int64_t j = c.kv_lens[b] - c.q_lens[b] + l;
      const int64_t page = d.page_table[b * d.max_pages + j / c.page_size];
      const int64_t to = (page * c.page_size + j % c.page_size) * slot;
      const int64_t from = (d.cu_seqlens[b] + l) * slot;
      std::copy_n(d.k_new.values.begin() + from, slot, k_want.begin() + to);
      std::copy_n(d.v_new.values.begin() + from, slot, v_want.begin() + to);
    }
  }
  // Compared as bytes: the untouched slots hold NaN.
  EXPECT_EQ(std::memcmp(region->data(), k_want.data(), cache_bytes), 0);
  EXPECT_EQ(std::memcmp(region->data() + cache_bytes, v_want.data(), cache_bytes), 0);
}

TEST_F(PagedServerTest, Refusals) {
  PagedCase c;
  c.kv_lens = {9, 20};
  c.q_lens = {2, 3};
  c.page_size = 4;
  std::mt19937_64 rng(3);
  const PagedData d = testing::MakePagedData(c, DType::kFloat32, rng);
  CallResult result;
  PagedAttentionArgs bad_page = Args(c, d);
  reinterpret_cast<int32_t*>(bad_page.page_table.bytes.data())[d.max_pages + 4] = 917;
  grpc::Status status = client_->PagedAttention(bad_page, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("page_table[1][4] = 917 is outside [0, "),
            std::string::npos)
      << status.error_message();

  PagedAttentionArgs float_index = Args(c, d);
  float_index.kv_lens.dtype = v1::DTYPE_FP32;
  status = client_->PagedAttention(float_index, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("kv_lens is fp32"), std::string::npos);

  PagedAttentionArgs an1 = Args(c, d);
  an1.backend = v1::BACKEND_AN1;
  EXPECT_EQ(client_->PagedAttention(an1, &result).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  PagedAttentionArgs missing = Args(c, d);
  missing.page_table = HostTensor{};
  missing.page_table.shape = {2, d.max_pages};
  missing.page_table.dtype = v1::DTYPE_INT32;
  EXPECT_EQ(client_->PagedAttention(missing, &result).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Random corruptions of the index tensors' values and shapes: only OK or INVALID_ARGUMENT, and
// the server still answers a valid request correctly.
TEST_F(PagedServerTest, FuzzIndexTensors) {
  PagedCase c;
  c.kv_lens = {33, 1, 70, 8};
  c.q_lens = {3, 1, 12, 0};
  c.page_size = 8;
  c.append = false;
  std::mt19937_64 rng(4);
  const PagedData d = testing::MakePagedData(c, DType::kFloat32, rng);
  const int32_t specials[] = {-1, 0, 1, INT32_MIN, INT32_MAX, 1 << 30, 7, 8, 9, 64, 71};
  int ok = 0, refused = 0;
  for (int iteration = 0; iteration < 300; ++iteration) {
    PagedAttentionArgs args = Args(c, d);
    HostTensor* targets[] = {&args.page_table, &args.cu_seqlens_q, &args.kv_lens};
    const int corruptions = 1 + static_cast<int>(rng() % 3);
    for (int n = 0; n < corruptions; ++n) {
      HostTensor* t = targets[rng() % 3];
      const std::size_t count = t->bytes.size() / 4;
      const std::size_t at = rng() % count;
      int32_t value = specials[rng() % std::size(specials)];
      if (rng() % 4 == 0) value = static_cast<int32_t>(rng());
      switch (rng() % 8) {
        case 0:  // a shape that disagrees with the bytes or the other tensors
          t->shape[0] += static_cast<int64_t>(rng() % 3) - 1;
          break;
        case 1:  // truncated bytes
          t->bytes.resize(t->bytes.size() - 4 * (rng() % count));
          break;
        default:
          std::memcpy(t->bytes.data() + 4 * at, &value, 4);
      }
    }
    CallResult result;
    const grpc::Status status = client_->PagedAttention(std::move(args), &result);
    ASSERT_TRUE(status.ok() || status.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_code() << ": " << status.error_message();
    (status.ok() ? ok : refused)++;
  }
  EXPECT_GT(refused, 0);
  bool serving = false;
  EXPECT_TRUE(client_->Health(&serving).ok());
  EXPECT_TRUE(serving);
  CallResult result;
  ASSERT_TRUE(client_->PagedAttention(Args(c, d), &result).ok());
  ExpectCorrect(c, d, result);
  std::printf("fuzz: %d accepted, %d refused\n", ok, refused);
}

}  // namespace
}  // namespace an1
