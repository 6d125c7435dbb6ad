// The GPU engine (label `gpu`): the GPU baseline attention and the cuBLASLt matmul (baseline
// and tuned an1) against a double-precision reference on awkward shapes, with outputs poisoned
// before every run; the log-sum-exp of both attention backends; the kernel each report names;
// out-of-memory answered with RESOURCE_EXHAUSTED and the next request served. Skipped, with the
// reason, where no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/engine.h"
#include "tests/engine_runner.h"
#include "tests/gpu_engine_fixture.h"
#include "tests/reference.h"

namespace an1 {
namespace {

using testing::AttentionCase;

using testing::Decode;
using testing::Encode;
using testing::Encoded;
using testing::Tolerance;

// One engine for the suite: on the GPU, with a license (from a key made here) for an1 matmul.
class GpuEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string;
    engine_ = testing::MakeLicensedGpuEngine(skip_reason_).release();
    if (engine_ != nullptr) {
      delete skip_reason_;
      skip_reason_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }
  void SetUp() override {
    if (skip_reason_) GTEST_SKIP() << *skip_reason_;
    ASSERT_TRUE(engine_->Info().gpu_mode) << engine_->Info().mode_reason;
  }

  static inline Engine* engine_ = nullptr;
  static inline std::string* skip_reason_ = nullptr;
};

TEST_F(GpuEngineTest, BaselineAttentionMatchesReference) {
  const std::vector<AttentionCase> shapes = {
      {1, 1, 1, 1, 1, 8},
      {1, 1, 1, 1, 31, 64},
      {2, 4, 2, 37, 53, 64},
      {1, 3, 1, 53, 37, 16},
      {3, 2, 2, 17, 17, 128},
      {1, 2, 1, 33, 1, 128},
      {2, 8, 2, 129, 257, 128},
      // Key lengths divisible by 4 take the softmax's vectorized paths: registers up to 512 and
      // 2048 keys, two passes beyond.
      {1, 2, 1, 7, 64, 32},
      {1, 2, 2, 33, 1028, 64},
      {1, 1, 1, 5, 2052, 16},
  };
  std::mt19937_64 rng(11);
  for (const AttentionCase& c : shapes) {
    for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      for (bool causal : {true, false}) {
        const std::size_t q_n = c.batch * c.heads * c.q_len * c.head_dim;
        const std::size_t kv_n = c.batch * c.kv_heads * c.kv_len * c.head_dim;
        Encoded q = Encode(q_n, dtype, rng), k = Encode(kv_n, dtype, rng),
                v = Encode(kv_n, dtype, rng);
        AttentionInputs in{{dtype, {c.batch, c.heads, c.q_len, c.head_dim}, q.bytes},
                           {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, k.bytes},
                           {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, v.bytes},
                           causal,
                           0.3f};
        std::vector<std::byte> out;
        auto run = testing::RunToCompletion(
            *engine_, engine_->PrepareAttention(in, BackendKind::kBaseline), &out);
        ASSERT_TRUE(run.status.ok()) << run.status.ToString();
        EXPECT_TRUE(run.report.device.is_cuda());
        EXPECT_EQ(run.report.kernel, "baseline.gpu.unfused");
        EXPECT_GT(run.report.compute_seconds, 0);
        const std::vector<float> got = Decode(out, dtype);
        for (float x : got) ASSERT_FALSE(std::isnan(x)) << "unwritten or NaN output";
        const double err = testing::RelativeError(
            got, testing::ReferenceAttention(c, q.values, k.values, v.values, causal, 0.3));
        EXPECT_LE(err, Tolerance(dtype))
            << DTypeName(dtype) << " causal=" << causal << " B" << c.batch << " H" << c.heads
            << " Hkv" << c.kv_heads << " Sq" << c.q_len << " Sk" << c.kv_len << " D" << c.head_dim;
      }
    }
  }
}

TEST_F(GpuEngineTest, AutoAttentionRunsTheBaselineAndSaysWhy) {
  std::vector<std::byte> bytes(4 * 8 * 2);
  std::mt19937_64 rng(3);
  Encoded x = Encode(32, DType::kFloat16, rng);
  AttentionInputs in{{DType::kFloat16, {1, 1, 4, 8}, x.bytes},
                     {DType::kFloat16, {1, 1, 4, 8}, x.bytes},
                     {DType::kFloat16, {1, 1, 4, 8}, x.bytes},
                     true,
                     {}};
  auto prepared = engine_->PrepareAttention(in, BackendKind::kAuto);
  ASSERT_TRUE(prepared.ok());
  EXPECT_EQ(prepared->choice.kind, BackendKind::kBaseline);
  EXPECT_NE(prepared->choice.reason.find("head_dim 64 or 128"), std::string::npos)
      << prepared->choice.reason;
  EXPECT_EQ(engine_->PrepareAttention(in, BackendKind::kAn1).status().code(),
            StatusCode::kUnimplemented);
}

TEST_F(GpuEngineTest, An1FusedAttentionMatchesReference) {
  const std::vector<AttentionCase> shapes = {
      {1, 1, 1, 1, 1, 64},      {1, 2, 1, 1, 97, 128},  {2, 4, 2, 37, 53, 64},
      {1, 3, 1, 131, 67, 128},  {2, 2, 2, 64, 64, 128}, {1, 4, 4, 200, 200, 64},
      {1, 8, 2, 129, 257, 128}, {3, 2, 1, 65, 1, 64},
  };
  std::mt19937_64 rng(17);
  for (const AttentionCase& c : shapes) {
    for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
      for (bool causal : {true, false}) {
        const std::size_t q_n = c.batch * c.heads * c.q_len * c.head_dim;
        const std::size_t kv_n = c.batch * c.kv_heads * c.kv_len * c.head_dim;
        Encoded q = Encode(q_n, dtype, rng), k = Encode(kv_n, dtype, rng),
                v = Encode(kv_n, dtype, rng);
        const float scale = causal ? 0.11f : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
        AttentionInputs in{{dtype, {c.batch, c.heads, c.q_len, c.head_dim}, q.bytes},
                           {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, k.bytes},
                           {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, v.bytes},
                           causal,
                           scale};
        std::vector<std::byte> out;
        auto run = testing::RunToCompletion(*engine_,
                                            engine_->PrepareAttention(in, BackendKind::kAn1), &out);
        ASSERT_TRUE(run.status.ok()) << run.status.ToString();
        EXPECT_EQ(run.report.backend, BackendKind::kAn1);
        const std::vector<float> got = Decode(out, dtype);
        for (float x : got) ASSERT_FALSE(std::isnan(x)) << "unwritten or NaN output";
        const auto want =
            testing::ReferenceAttention(c, q.values, k.values, v.values, causal, scale);
        EXPECT_LE(testing::RelativeError(got, want), Tolerance(dtype))
            << DTypeName(dtype) << " causal=" << causal << " B" << c.batch << " H" << c.heads
            << " Hkv" << c.kv_heads << " Sq" << c.q_len << " Sk" << c.kv_len << " D" << c.head_dim;
        if (causal && c.q_len > c.kv_len) {  // rows that see no key are exactly zero
          for (int64_t x = 0; x < (c.q_len - c.kv_len) * c.head_dim; ++x) ASSERT_EQ(got[x], 0.0f);
        }
      }
    }
  }
}

// The report names the kernel that ran: the fused prefill kernel for an an1 attention of 128
// query rows, the unfused GEMM-softmax-GEMM path for the baseline.
TEST_F(GpuEngineTest, ReportsTheKernelThatRan) {
  std::mt19937_64 rng(128);
  Encoded x = Encode(2 * 128 * 64, DType::kFloat16, rng);
  AttentionInputs in{{DType::kFloat16, {1, 2, 128, 64}, x.bytes},
                     {DType::kFloat16, {1, 2, 128, 64}, x.bytes},
                     {DType::kFloat16, {1, 2, 128, 64}, x.bytes},
                     true,
                     {}};
  std::vector<std::byte> out;
  auto an1 =
      testing::RunToCompletion(*engine_, engine_->PrepareAttention(in, BackendKind::kAn1), &out);
  ASSERT_TRUE(an1.status.ok()) << an1.status.ToString();
  EXPECT_EQ(an1.report.kernel, "an1.fwd.sm90");  // the Hopper kernel on H100/H200
  auto baseline = testing::RunToCompletion(
      *engine_, engine_->PrepareAttention(in, BackendKind::kBaseline), &out);
  ASSERT_TRUE(baseline.status.ok()) << baseline.status.ToString();
  EXPECT_EQ(baseline.report.kernel, "baseline.gpu.unfused");
}

// return_lse on both GPU backends: each query row's ln(sum_j exp(q_i . k_j * scale)) against a
// float64 reference, -inf exactly for the rows a causal mask leaves without a key (Sq > Sk), the
// LSE buffer poisoned with NaN first; the output stays right. The shapes cover one query row
// (what the dispatcher gives the decode kernel), GQA and MQA, Sq < Sk and Sq > Sk, partial tiles.
TEST_F(GpuEngineTest, LseMatchesReferenceOnBothBackends) {
  const std::vector<AttentionCase> shapes = {
      {1, 2, 1, 1, 97, 128},   {2, 4, 2, 37, 53, 64}, {1, 3, 1, 131, 67, 128},
      {1, 8, 2, 129, 257, 64}, {3, 2, 1, 65, 1, 64},  {1, 2, 2, 200, 200, 128},
  };
  std::mt19937_64 rng(23);
  for (BackendKind backend : {BackendKind::kBaseline, BackendKind::kAn1}) {
    for (const AttentionCase& c : shapes) {
      for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
        for (bool causal : {true, false}) {
          const std::size_t q_n = c.batch * c.heads * c.q_len * c.head_dim;
          const std::size_t kv_n = c.batch * c.kv_heads * c.kv_len * c.head_dim;
          Encoded q = Encode(q_n, dtype, rng), k = Encode(kv_n, dtype, rng),
                  v = Encode(kv_n, dtype, rng);
          std::vector<float> lse(c.batch * c.heads * c.q_len, std::nanf(""));
          AttentionInputs in{{dtype, {c.batch, c.heads, c.q_len, c.head_dim}, q.bytes},
                             {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, k.bytes},
                             {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, v.bytes},
                             causal,
                             0.11f,
                             true,
                             lse};
          std::vector<std::byte> out;
          auto run =
              testing::RunToCompletion(*engine_, engine_->PrepareAttention(in, backend), &out);
          ASSERT_TRUE(run.status.ok()) << run.status.ToString();
          const std::string what =
              std::string(BackendKindName(backend)) + " (" + run.report.kernel + ") " +
              std::string(DTypeName(dtype)) + " causal " + std::to_string(causal) + " B" +
              std::to_string(c.batch) + " H" + std::to_string(c.heads) + " Hkv" +
              std::to_string(c.kv_heads) + " Sq" + std::to_string(c.q_len) + " Sk" +
              std::to_string(c.kv_len) + " D" + std::to_string(c.head_dim);
          EXPECT_EQ(
              testing::CompareLse(lse, testing::ReferenceLse(c, q.values, k.values, causal, 0.11f),
                                  1e-3, 1e-5),
              "")
              << what;
          EXPECT_LE(testing::RelativeError(Decode(out, dtype),
                                           testing::ReferenceAttention(c, q.values, k.values,
                                                                       v.values, causal, 0.11f)),
                    Tolerance(dtype))
              << what;
        }
      }
    }
  }
}

// Scores of 1e4 to 1e12 (fp16 and bf16 inputs of magnitude 1e2 to 1e5): on both GPU backends
// the row maximum contributes exactly 1 (tests/reference.h), never inf, NaN or zeros, and the
// log-sum-exp stays exact to float rounding. The fused kernel's tiles: one row, one full and two
// partial 64-key tiles, 128-row blocks and beyond.
TEST_F(GpuEngineTest, HugeScoresKeepTheSoftmaxExactOnEveryBackend) {
  const std::vector<AttentionCase> shapes = {
      {1, 2, 2, 1, 1, 64},     {1, 2, 2, 1, 1, 128},    {1, 2, 1, 64, 64, 64},
      {1, 2, 1, 64, 64, 128},  {1, 2, 2, 130, 130, 64}, {1, 2, 2, 130, 130, 128},
      {2, 4, 2, 37, 301, 128}, {1, 1, 1, 257, 67, 64},
  };
  std::mt19937_64 rng(133120);
  for (BackendKind backend : {BackendKind::kBaseline, BackendKind::kAn1}) {
    for (const AttentionCase& c : shapes) {
      for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
        for (float magnitude : testing::HugeScoreMagnitudes(dtype)) {
          for (bool causal : {true, false}) {
            const testing::HugeScoreInputs x =
                testing::MakeHugeScoreInputs(c, dtype, magnitude, rng);
            std::vector<float> lse(c.batch * c.heads * c.q_len, std::nanf(""));
            AttentionInputs in{{dtype, {c.batch, c.heads, c.q_len, c.head_dim}, x.q.bytes},
                               {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, x.k.bytes},
                               {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, x.v.bytes},
                               causal,
                               std::nullopt,
                               true,
                               lse};
            std::vector<std::byte> out;
            auto run =
                testing::RunToCompletion(*engine_, engine_->PrepareAttention(in, backend), &out);
            ASSERT_TRUE(run.status.ok()) << run.status.ToString();
            const std::vector<float> got = Decode(out, dtype);
            const std::string what =
                std::string(BackendKindName(backend)) + " " + std::string(DTypeName(dtype)) +
                " magnitude " + std::to_string(magnitude) + " causal " + std::to_string(causal) +
                " Sq " + std::to_string(c.q_len) + " Sk " + std::to_string(c.kv_len) + " D " +
                std::to_string(c.head_dim);
            for (float y : got) ASSERT_TRUE(std::isfinite(y)) << what;
            const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
            const auto want =
                testing::ReferenceAttention(c, x.q.values, x.k.values, x.v.values, causal, scale);
            EXPECT_LE(testing::RelativeError(got, want), Tolerance(dtype)) << what;
            // The LSE at these magnitudes: the scaled row max plus a small log, to float rounding.
            EXPECT_EQ(testing::CompareLse(
                          lse, testing::ReferenceLse(c, x.q.values, x.k.values, causal, scale),
                          1e-3, 1e-5),
                      "")
                << what;
          }
        }
      }
    }
  }
}

TEST_F(GpuEngineTest, MatmulMatchesReferenceOnBothBackends) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{1, 1}, {1, 1}},        {{17, 29}, {29, 11}},          {{3, 1, 17, 29}, {5, 29, 11}},
      {{2, 3, 1, 7}, {7, 19}}, {{1, 5}, {4, 1, 5, 3}},        {{6, 33, 1}, {6, 1, 31}},
      {{257, 131}, {131, 67}}, {{4, 128, 256}, {4, 256, 64}},
  };
  std::mt19937_64 rng(5);
  for (const auto& [a_shape, b_shape] : shapes) {
    for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      for (BackendKind backend : {BackendKind::kBaseline, BackendKind::kAn1}) {
        std::size_t a_n = 1, b_n = 1;
        for (int64_t d : a_shape) a_n *= d;
        for (int64_t d : b_shape) b_n *= d;
        Encoded a = Encode(a_n, dtype, rng), b = Encode(b_n, dtype, rng);
        TensorView av{dtype, a_shape, a.bytes}, bv{dtype, b_shape, b.bytes};
        std::vector<std::byte> out;
        auto run =
            testing::RunToCompletion(*engine_, engine_->PrepareMatmul(av, bv, backend), &out);
        ASSERT_TRUE(run.status.ok()) << run.status.ToString();
        EXPECT_EQ(run.report.backend, backend);
        EXPECT_EQ(run.report.kernel,
                  backend == BackendKind::kAn1 ? "cublaslt.tuned" : "cublaslt.heuristic");
        std::vector<int64_t> shape;
        const auto want = testing::ReferenceMatmul(a_shape, a.values, b_shape, b.values, &shape);
        const std::vector<float> got = Decode(out, dtype);
        for (float x : got) ASSERT_FALSE(std::isnan(x)) << "unwritten or NaN output";
        EXPECT_LE(testing::RelativeError(got, want), Tolerance(dtype))
            << DTypeName(dtype) << " " << ShapeToString(a_shape) << " @ " << ShapeToString(b_shape)
            << " on " << BackendKindName(backend);
      }
    }
  }
}

TEST_F(GpuEngineTest, Tf32OnlyWhenAsked) {
  std::mt19937_64 rng(9);
  Encoded a = Encode(512 * 512, DType::kFloat32, rng), b = Encode(512 * 512, DType::kFloat32, rng);
  TensorView av{DType::kFloat32, {512, 512}, a.bytes}, bv{DType::kFloat32, {512, 512}, b.bytes};
  std::vector<int64_t> shape;
  const auto want = testing::ReferenceMatmul({512, 512}, a.values, {512, 512}, b.values, &shape);
  std::vector<std::byte> out;
  auto exact =
      testing::RunToCompletion(*engine_, engine_->PrepareMatmul(av, bv, BackendKind::kAn1), &out);
  ASSERT_TRUE(exact.status.ok());
  EXPECT_LE(testing::RelativeError(Decode(out, DType::kFloat32), want), 1e-5);
  // Fresh inputs, so that a TF32 call that wrote nothing cannot pass on the previous result.
  Encoded c = Encode(512 * 512, DType::kFloat32, rng), e = Encode(512 * 512, DType::kFloat32, rng);
  TensorView cv{DType::kFloat32, {512, 512}, c.bytes}, ev{DType::kFloat32, {512, 512}, e.bytes};
  const auto want_tf32 =
      testing::ReferenceMatmul({512, 512}, c.values, {512, 512}, e.values, &shape);
  auto tf32 = testing::RunToCompletion(
      *engine_, engine_->PrepareMatmul(cv, ev, BackendKind::kAn1, /*allow_tf32=*/true), &out);
  ASSERT_TRUE(tf32.status.ok());
  const double tf32_error = testing::RelativeError(Decode(out, DType::kFloat32), want_tf32);
  EXPECT_LE(tf32_error, 1e-2);
  EXPECT_GT(tf32_error, 1e-6) << "TF32 was asked for but the result is exact fp32";
}

TEST_F(GpuEngineTest, OutOfMemoryIsResourceExhaustedAndTheNextRequestSucceeds) {
  // 512 heads x 8192^2 fp32 scores = 128 GiB: more than any single GPU here holds.
  const int64_t heads = 512, len = 8192, dim = 16;
  std::vector<std::byte> q(heads * len * dim * 2, std::byte{0x3c});  // fp16 1.0
  AttentionInputs in{{DType::kFloat16, {1, heads, len, dim}, q},
                     {DType::kFloat16, {1, heads, len, dim}, q},
                     {DType::kFloat16, {1, heads, len, dim}, q},
                     false,
                     {}};
  std::vector<std::byte> out;
  auto huge = testing::RunToCompletion(*engine_,
                                       engine_->PrepareAttention(in, BackendKind::kBaseline), &out);
  EXPECT_EQ(huge.status.code(), StatusCode::kResourceExhausted) << huge.status.ToString();
  EXPECT_TRUE(engine_->Healthy());

  std::mt19937_64 rng(1);
  Encoded x = Encode(2 * 64 * 64, DType::kFloat16, rng);
  AttentionInputs small{{DType::kFloat16, {1, 2, 64, 64}, x.bytes},
                        {DType::kFloat16, {1, 2, 64, 64}, x.bytes},
                        {DType::kFloat16, {1, 2, 64, 64}, x.bytes},
                        true,
                        {}};
  auto next = testing::RunToCompletion(
      *engine_, engine_->PrepareAttention(small, BackendKind::kBaseline), &out);
  EXPECT_TRUE(next.status.ok()) << next.status.ToString();
}

}  // namespace
}  // namespace an1
