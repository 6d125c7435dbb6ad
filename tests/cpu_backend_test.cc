// The CPU reference backend against a double-precision reference, on awkward sizes (length 1,
// primes, non-multiples of the 16-row task), causal and not, GQA/MQA, Sq != Sk both ways, custom
// scales and every dtype: outputs, and the log-sum-exp of return_lse. Outputs are poisoned with NaN
// before every run.
#include "engine/cpu_backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "tests/reference.h"

namespace an1 {
namespace {

using testing::AttentionCase;

using testing::Decode;
using testing::Encode;
using testing::Encoded;
using testing::Tolerance;

void Poison(std::vector<std::byte>& out) { std::memset(out.data(), 0xff, out.size()); }  // NaN

struct AttentionParam {
  AttentionCase shape;
  bool causal;
  DType dtype;
  std::optional<float> scale;
};

class CpuAttentionTest : public ::testing::TestWithParam<AttentionParam> {};

TEST_P(CpuAttentionTest, MatchesDoubleReference) {
  const AttentionParam& p = GetParam();
  const AttentionCase& c = p.shape;
  std::mt19937_64 rng(c.q_len * 1000 + c.kv_len);
  const std::size_t q_n = c.batch * c.heads * c.q_len * c.head_dim;
  const std::size_t kv_n = c.batch * c.kv_heads * c.kv_len * c.head_dim;
  Encoded q = Encode(q_n, p.dtype, rng), k = Encode(kv_n, p.dtype, rng),
          v = Encode(kv_n, p.dtype, rng);
  AttentionInputs in{{p.dtype, {c.batch, c.heads, c.q_len, c.head_dim}, q.bytes},
                     {p.dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, k.bytes},
                     {p.dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, v.bytes},
                     p.causal,
                     p.scale};
  auto problem = ValidateAttention(in, {});
  ASSERT_TRUE(problem.ok()) << problem.status().ToString();

  CpuBackend backend(3);
  std::vector<std::byte> out(problem->output.byte_size);
  Poison(out);
  ASSERT_TRUE(backend.Attention(*problem, in, out).ok());

  const std::vector<float> got = Decode(out, p.dtype);
  const std::vector<double> want =
      testing::ReferenceAttention(c, q.values, k.values, v.values, p.causal, problem->scale);
  for (float x : got) ASSERT_FALSE(std::isnan(x));
  EXPECT_LE(testing::RelativeError(got, want), Tolerance(p.dtype));
  if (p.causal && c.q_len > c.kv_len) {
    // The first Sq - Sk query rows see no key: their output is exactly zero.
    for (int64_t i = 0; i < c.q_len - c.kv_len; ++i)
      for (int64_t x = 0; x < c.head_dim; ++x) ASSERT_EQ(got[i * c.head_dim + x], 0.0f);
  }
}

// The log-sum-exp of every query row (return_lse), on the same shapes: -inf exactly for the rows
// a causal mask leaves without a key (Sq > Sk), the natural log of the softmax denominator
// elsewhere. The LSE buffer is poisoned with NaN first.
TEST_P(CpuAttentionTest, LseMatchesDoubleReference) {
  const AttentionParam& p = GetParam();
  const AttentionCase& c = p.shape;
  std::mt19937_64 rng(c.q_len * 7919 + c.kv_len);
  const std::size_t q_n = c.batch * c.heads * c.q_len * c.head_dim;
  const std::size_t kv_n = c.batch * c.kv_heads * c.kv_len * c.head_dim;
  Encoded q = Encode(q_n, p.dtype, rng), k = Encode(kv_n, p.dtype, rng),
          v = Encode(kv_n, p.dtype, rng);
  std::vector<float> lse(c.batch * c.heads * c.q_len, std::nanf(""));
  AttentionInputs in{{p.dtype, {c.batch, c.heads, c.q_len, c.head_dim}, q.bytes},
                     {p.dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, k.bytes},
                     {p.dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, v.bytes},
                     p.causal,
                     p.scale,
                     true,
                     lse};
  auto problem = ValidateAttention(in, {});
  ASSERT_TRUE(problem.ok()) << problem.status().ToString();
  CpuBackend backend(3);
  std::vector<std::byte> out(problem->output.byte_size);
  ExecutionTimes times;
  ASSERT_TRUE(backend.Attention(*problem, in, out, {}, &times).ok());
  EXPECT_EQ(times.kernel, "baseline.cpu");
  const std::vector<double> want =
      testing::ReferenceLse(c, q.values, k.values, p.causal, problem->scale);
  EXPECT_EQ(testing::CompareLse(lse, want, 1e-4, 1e-5), "");
  // The output is unchanged by asking for the LSE.
  EXPECT_LE(testing::RelativeError(Decode(out, p.dtype),
                                   testing::ReferenceAttention(c, q.values, k.values, v.values,
                                                               p.causal, problem->scale)),
            Tolerance(p.dtype));
}

std::vector<AttentionParam> AttentionParams() {
  const std::vector<AttentionCase> shapes = {
      {1, 1, 1, 1, 1, 1},     // everything of length 1
      {1, 1, 1, 1, 31, 8},    // decode: one query against a long K/V
      {2, 4, 2, 37, 53, 64},  // GQA, Sq < Sk, primes
      {1, 3, 1, 53, 37, 16},  // MQA, Sq > Sk (fully masked rows when causal)
      {3, 2, 2, 17, 17, 5},   // odd head dim, square
      {1, 2, 1, 33, 1, 128},  // one key
  };
  std::vector<AttentionParam> params;
  for (const AttentionCase& s : shapes)
    for (bool causal : {true, false})
      for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16})
        params.push_back({s, causal, d, std::nullopt});
  params.push_back({{1, 2, 2, 19, 23, 32}, true, DType::kFloat32, 0.3f});
  params.push_back({{1, 2, 2, 19, 23, 32}, false, DType::kFloat16, -1.25f});
  return params;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuAttentionTest, ::testing::ValuesIn(AttentionParams()));

// Scores of 1e4 to 1e12: the row maximum must contribute exactly 1 (tests/reference.h).
TEST(CpuAttentionHugeScores, SoftmaxStaysExact) {
  const std::vector<AttentionCase> shapes = {
      {1, 2, 2, 1, 1, 64}, {1, 2, 1, 64, 64, 128}, {1, 2, 2, 130, 130, 64}, {1, 1, 1, 7, 19, 5}};
  std::mt19937_64 rng(133120);
  CpuBackend backend(2);
  for (const AttentionCase& c : shapes) {
    for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      for (float magnitude : testing::HugeScoreMagnitudes(dtype)) {
        for (bool causal : {true, false}) {
          const testing::HugeScoreInputs x = testing::MakeHugeScoreInputs(c, dtype, magnitude, rng);
          AttentionInputs in{{dtype, {c.batch, c.heads, c.q_len, c.head_dim}, x.q.bytes},
                             {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, x.k.bytes},
                             {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, x.v.bytes},
                             causal,
                             std::nullopt};
          auto problem = ValidateAttention(in, {});
          ASSERT_TRUE(problem.ok()) << problem.status().ToString();
          std::vector<std::byte> out(problem->output.byte_size);
          Poison(out);
          ASSERT_TRUE(backend.Attention(*problem, in, out).ok());
          const std::vector<float> got = Decode(out, dtype);
          const std::vector<double> want = testing::ReferenceAttention(
              c, x.q.values, x.k.values, x.v.values, causal, problem->scale);
          for (float y : got) ASSERT_TRUE(std::isfinite(y)) << "magnitude " << magnitude;
          EXPECT_LE(testing::RelativeError(got, want), Tolerance(dtype))
              << DTypeName(dtype) << " magnitude " << magnitude << " causal " << causal << " Sq "
              << c.q_len << " D " << c.head_dim;
        }
      }
    }
  }
}

// The LSE at scores of 1e4 to 1e12: max + log(sum) stays finite and exact to float rounding,
// also for causal rows that see only the negative keys and, with Sq > Sk, -inf for rows that see
// none.
TEST(CpuAttentionHugeScores, LseStaysExact) {
  const std::vector<AttentionCase> shapes = {
      {1, 2, 2, 1, 1, 64}, {1, 2, 1, 64, 64, 128}, {1, 1, 1, 7, 19, 5}, {1, 2, 1, 9, 4, 16}};
  std::mt19937_64 rng(99);
  CpuBackend backend(2);
  for (const AttentionCase& c : shapes) {
    for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      for (float magnitude : testing::HugeScoreMagnitudes(dtype)) {
        for (bool causal : {true, false}) {
          const testing::HugeScoreInputs x = testing::MakeHugeScoreInputs(c, dtype, magnitude, rng);
          std::vector<float> lse(c.batch * c.heads * c.q_len, std::nanf(""));
          AttentionInputs in{{dtype, {c.batch, c.heads, c.q_len, c.head_dim}, x.q.bytes},
                             {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, x.k.bytes},
                             {dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}, x.v.bytes},
                             causal,
                             std::nullopt,
                             true,
                             lse};
          auto problem = ValidateAttention(in, {});
          ASSERT_TRUE(problem.ok()) << problem.status().ToString();
          std::vector<std::byte> out(problem->output.byte_size);
          ASSERT_TRUE(backend.Attention(*problem, in, out).ok());
          const std::vector<double> want =
              testing::ReferenceLse(c, x.q.values, x.k.values, causal, problem->scale);
          EXPECT_EQ(testing::CompareLse(lse, want, 1e-4, 1e-5), "")
              << DTypeName(dtype) << " magnitude " << magnitude << " causal " << causal << " Sq "
              << c.q_len << " Sk " << c.kv_len;
        }
      }
    }
  }
}

struct MatmulParam {
  std::vector<int64_t> a, b;
  DType dtype;
};

class CpuMatmulTest : public ::testing::TestWithParam<MatmulParam> {};

TEST_P(CpuMatmulTest, MatchesDoubleReference) {
  const MatmulParam& p = GetParam();
  std::mt19937_64 rng(p.a.back() * 31 + p.b.back());
  auto count = [](const std::vector<int64_t>& s) {
    std::size_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  };
  Encoded a = Encode(count(p.a), p.dtype, rng), b = Encode(count(p.b), p.dtype, rng);
  TensorView av{p.dtype, p.a, a.bytes}, bv{p.dtype, p.b, b.bytes};
  auto problem = ValidateMatmul(av, bv, {});
  ASSERT_TRUE(problem.ok()) << problem.status().ToString();

  CpuBackend backend(2);
  std::vector<std::byte> out(problem->output.byte_size);
  Poison(out);
  ExecutionTimes times;
  ASSERT_TRUE(backend.Matmul(*problem, av, bv, out, {}, &times).ok());
  EXPECT_EQ(times.kernel, "baseline.cpu");
  std::vector<int64_t> want_shape;
  const std::vector<double> want =
      testing::ReferenceMatmul(p.a, a.values, p.b, b.values, &want_shape);
  EXPECT_EQ(problem->output.shape, want_shape);
  const std::vector<float> got = Decode(out, p.dtype);
  for (float x : got) ASSERT_FALSE(std::isnan(x));
  EXPECT_LE(testing::RelativeError(got, want), Tolerance(p.dtype));
}

std::vector<MatmulParam> MatmulParams() {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{1, 1}, {1, 1}},
      {{17, 29}, {29, 11}},
      {{3, 1, 17, 29}, {5, 29, 11}},  // the acceptance shape: broadcast both ways
      {{2, 3, 1, 7}, {7, 19}},        // rank 4 @ rank 2
      {{1, 5}, {4, 1, 5, 3}},         // rank 2 @ rank 4
      {{6, 33, 1}, {6, 1, 31}},       // k = 1
  };
  std::vector<MatmulParam> params;
  for (const auto& [a, b] : shapes)
    for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16})
      params.push_back({a, b, d});
  return params;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuMatmulTest, ::testing::ValuesIn(MatmulParams()));

}  // namespace
}  // namespace an1
