// Paged attention through the engine on the CPU: the CPU baseline against a float64 reference on
// ragged batches (lengths 1 and primes, an empty sequence), page sizes 1, 16 and 256, append,
// sliding windows, softcap, LSE and GQA group 5, with every slot that must not be read holding
// NaN; and the result bit for bit unchanged when those slots hold something else.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/engine.h"
#include "tests/engine_runner.h"
#include "tests/paged_case.h"

namespace an1 {
namespace {

using testing::PagedCase;
using testing::PagedData;
using testing::PagedRequest;

std::unique_ptr<Engine> MakeEngine() {
  EngineOptions options;
  options.disable_gpu = true;
  options.cpu_threads = 2;
  auto engine = Engine::Create(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

// Runs the case and checks output and LSE against the reference; returns the output bytes.
std::vector<std::byte> CheckCase(Engine& engine, const PagedCase& c, DType dtype, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const PagedData d = testing::MakePagedData(c, dtype, rng);
  PagedRequest r(c, d, dtype);
  std::vector<std::byte> out;
  const testing::RunResult result = testing::RunToCompletion(
      engine, engine.PreparePagedAttention(r.inputs, BackendKind::kAuto), &out);
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
  if (!result.status.ok()) return {};
  EXPECT_EQ(result.report.kernel, "baseline.cpu");
  EXPECT_EQ(result.report.tokens, static_cast<uint64_t>(d.total_q));
  std::vector<double> want_lse;
  const std::vector<double> want =
      testing::ReferencePaged(c, d, 1.0 / std::sqrt(double(c.head_dim)), &want_lse);
  const std::vector<float> got = testing::Decode(out, dtype);
  for (float x : got) EXPECT_TRUE(std::isfinite(x)) << "a NaN slot was read";
  EXPECT_LE(testing::RelativeError(got, want), testing::Tolerance(dtype));
  EXPECT_EQ(testing::CompareLse(r.lse, want_lse, 1e-3, 1e-4), "");
  if (c.append) {  // the appended rows are in the cache, where the ranges say
    std::size_t appended = 0;
    for (const CacheRange& range : r.appended) {
      appended += range.size;
      EXPECT_LE(range.offset + range.size, r.k_cache.size());
    }
    EXPECT_EQ(appended, d.k_new.bytes.size());
    const std::size_t slot = c.kv_heads * c.head_dim * DTypeSize(dtype);
    const int64_t b = static_cast<int64_t>(c.kv_lens.size()) - 1;  // its last appended row
    const int64_t j = c.kv_lens[b] - 1;
    if (c.q_lens[b] > 0) {
      const int64_t page = d.page_table[b * d.max_pages + j / c.page_size];
      EXPECT_EQ(std::memcmp(r.k_cache.data() + (page * c.page_size + j % c.page_size) * slot,
                            d.k_new.bytes.data() + (d.total_q - 1) * slot, slot),
                0);
    }
  }
  return out;
}

TEST(PagedAttentionTest, RaggedPrimesAcrossPageSizes) {
  auto engine = MakeEngine();
  for (int64_t page_size : {1, 16, 256}) {
    PagedCase c;
    c.kv_lens = {1, 37, 131, 300, 17};
    c.q_lens = {1, 7, 131, 1, 0};  // an empty sequence is skipped
    c.page_size = page_size;
    SCOPED_TRACE("page_size " + std::to_string(page_size));
    CheckCase(*engine, c, DType::kFloat32, 1);
  }
}

TEST(PagedAttentionTest, EveryDType) {
  auto engine = MakeEngine();
  for (DType dtype : {DType::kFloat16, DType::kBFloat16, DType::kFloat32}) {
    PagedCase c;
    c.kv_lens = {53, 2, 97};
    c.q_lens = {13, 1, 5};
    SCOPED_TRACE(std::string(DTypeName(dtype)));
    CheckCase(*engine, c, dtype, 2);
  }
}

TEST(PagedAttentionTest, AppendIsOrderedBeforeTheReads) {
  auto engine = MakeEngine();
  for (int64_t page_size : {1, 16, 256}) {
    PagedCase c;
    c.kv_lens = {29, 1, 64, 300};
    c.q_lens = {3, 1, 64, 11};  // the appended slots hold NaN until the append
    c.page_size = page_size;
    c.append = true;
    SCOPED_TRACE("page_size " + std::to_string(page_size));
    CheckCase(*engine, c, DType::kFloat16, 3);
  }
}

TEST(PagedAttentionTest, SlidingWindowSoftcapNonCausal) {
  auto engine = MakeEngine();
  PagedCase c;
  c.kv_lens = {211, 31, 5};
  c.q_lens = {23, 31, 1};
  for (bool causal : {true, false}) {
    for (auto [left, right] : {std::pair{0, 0}, {7, -1}, {-1, 3}, {16, 5}}) {
      c.causal = causal;
      c.window_left = left;
      c.window_right = right;
      c.softcap = left == 7 ? 0.0f : 1.5f;  // small: the cap bends the scores
      SCOPED_TRACE("causal " + std::to_string(causal) + " window " + std::to_string(left) + "," +
                   std::to_string(right));
      CheckCase(*engine, c, DType::kFloat32, 4);
    }
  }
}

TEST(PagedAttentionTest, GqaGroupFive) {
  auto engine = MakeEngine();
  PagedCase c;
  c.kv_lens = {101, 7};
  c.q_lens = {19, 2};
  c.heads = 10;
  c.kv_heads = 2;
  c.append = true;
  CheckCase(*engine, c, DType::kBFloat16, 5);
}

TEST(PagedAttentionTest, UnreadSlotsDoNotChangeTheResult) {
  auto engine = MakeEngine();
  PagedCase c;
  c.kv_lens = {40, 3, 77};
  c.q_lens = {5, 3, 1};
  c.append = true;
  std::vector<std::vector<std::byte>> outputs;
  for (float unread : {std::numeric_limits<float>::quiet_NaN(), 0.0f, 1e30f}) {
    std::mt19937_64 rng(6);
    const PagedData d = testing::MakePagedData(c, DType::kFloat32, rng, unread);
    PagedRequest r(c, d, DType::kFloat32);
    std::vector<std::byte> out;
    ASSERT_TRUE(testing::RunToCompletion(
                    *engine, engine->PreparePagedAttention(r.inputs, BackendKind::kBaseline), &out)
                    .status.ok());
    outputs.push_back(out);
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], outputs[2]);
}

TEST(PagedAttentionTest, ExplicitAn1IsRefusedOnTheCpu) {
  auto engine = MakeEngine();
  PagedCase c;
  c.kv_lens = {4};
  c.q_lens = {1};
  std::mt19937_64 rng(7);
  const PagedData d = testing::MakePagedData(c, DType::kFloat32, rng);
  PagedRequest r(c, d, DType::kFloat32);
  EXPECT_EQ(engine->PreparePagedAttention(r.inputs, BackendKind::kAn1).status().code(),
            StatusCode::kFailedPrecondition);
}

// A backend without paged attention of its own answers UNIMPLEMENTED.
TEST(PagedAttentionTest, DefaultBackendIsUnimplemented) {
  class NoPaged final : public Backend {
    Status Attention(const ValidatedAttention&, const AttentionInputs&, std::span<std::byte>,
                     const ExecutionContext&, ExecutionTimes*) override {
      return OkStatus();
    }
    Status Matmul(const ValidatedMatmul&, const TensorView&, const TensorView&,
                  std::span<std::byte>, const ExecutionContext&, ExecutionTimes*) override {
      return OkStatus();
    }
  } backend;
  EXPECT_NE(backend.UnsupportedPagedAttention({}), "");
  EXPECT_EQ(backend.PagedAttention({}, {}, {}, {}, {}, nullptr).code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace an1
