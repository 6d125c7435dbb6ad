// Request validation: every malformed attention or matmul request is refused with
// INVALID_ARGUMENT (RESOURCE_EXHAUSTED above the size limits) and a message naming the fault.
#include "engine/validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace an1 {
namespace {

// A view with the right number of bytes for its shape (backed by a static zero buffer).
TensorView View(std::vector<int64_t> shape, DType dtype = DType::kFloat16) {
  static std::vector<std::byte> zeros(1 << 22);
  std::size_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<std::size_t>(d);
  return TensorView{dtype, std::move(shape), std::span<const std::byte>(zeros.data(), n)};
}

AttentionInputs Attention(std::vector<int64_t> q, std::vector<int64_t> k, std::vector<int64_t> v) {
  return AttentionInputs{View(std::move(q)), View(std::move(k)), View(std::move(v)), true, {}};
}

void ExpectError(const Status& status, StatusCode code, const std::string& fragment) {
  EXPECT_EQ(status.code(), code) << status.ToString();
  EXPECT_NE(status.message().find(fragment), std::string::npos)
      << "message '" << status.message() << "' lacks '" << fragment << "'";
}

TEST(ValidateAttentionTest, AcceptsGqaAndDifferentLengths) {
  auto r = ValidateAttention(Attention({2, 4, 37, 64}, {2, 2, 53, 64}, {2, 2, 53, 64}), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dims.heads, 4);
  EXPECT_EQ(r->dims.kv_heads, 2);
  EXPECT_EQ(r->dims.q_len, 37);
  EXPECT_EQ(r->dims.kv_len, 53);
  EXPECT_FLOAT_EQ(r->scale, 1.0f / 8.0f);
  EXPECT_EQ(r->output.shape, (std::vector<int64_t>{2, 4, 37, 64}));
  EXPECT_EQ(r->output.byte_size, 2u * 4 * 37 * 64 * 2);
}

TEST(ValidateAttentionTest, AcceptsLengthOneAndCustomScale) {
  AttentionInputs in = Attention({1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1});
  in.scale = -0.5f;
  auto r = ValidateAttention(in, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scale, -0.5f);
}

TEST(ValidateAttentionTest, LseIsFp32PerQueryRowWhenAsked) {
  AttentionInputs in = Attention({2, 4, 37, 64}, {2, 2, 53, 64}, {2, 2, 53, 64});
  auto plain = ValidateAttention(in, {});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->lse.has_value());
  std::vector<float> lse(2 * 4 * 37);
  in.return_lse = true;
  in.lse = lse;
  auto r = ValidateAttention(in, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->lse.has_value());
  EXPECT_EQ(r->lse->dtype, DType::kFloat32);
  EXPECT_EQ(r->lse->shape, (std::vector<int64_t>{2, 4, 37}));
  EXPECT_EQ(r->lse->byte_size, 2u * 4 * 37 * 4);
  EXPECT_EQ(LseElements(in.q), lse.size());
}

TEST(ValidateAttentionTest, RejectsAnLseBufferOfTheWrongSize) {
  AttentionInputs in = Attention({1, 2, 5, 8}, {1, 2, 5, 8}, {1, 2, 5, 8});
  std::vector<float> lse(11);
  in.return_lse = true;
  in.lse = lse;
  ExpectError(ValidateAttention(in, {}).status(), StatusCode::kInvalidArgument,
              "lse buffer has 11 elements; (batch, heads, seq_len) needs 10");
  in.lse = {};
  ExpectError(ValidateAttention(in, {}).status(), StatusCode::kInvalidArgument, "needs 10");
  in.return_lse = false;
  in.lse = std::span<float>(lse).first(10);
  ExpectError(ValidateAttention(in, {}).status(), StatusCode::kInvalidArgument,
              "return_lse is not set");
}

// The server sizes the LSE buffer from q before validation: a q that cannot be valid sizes none.
TEST(ValidateAttentionTest, LseElementsIsZeroForAnInvalidQ) {
  EXPECT_EQ(LseElements(View({2, 3, 5, 7})), 30u);
  EXPECT_EQ(LseElements(View({3, 5, 7})), 0u);
  EXPECT_EQ(LseElements(View({2, 0, 5, 7})), 0u);
  TensorView negative = View({2, 3, 5, 1});
  negative.shape[3] = -1;
  EXPECT_EQ(LseElements(negative), 0u);
  TensorView huge = View({1, 1, 1, 1});
  huge.shape = {int64_t{1} << 40, int64_t{1} << 40, int64_t{1} << 40, 1};  // overflows
  EXPECT_EQ(LseElements(huge), 0u);
  huge.shape = {1 << 20, 1 << 20, 1, 1};  // more rows than its bytes could hold
  EXPECT_EQ(LseElements(huge), 0u);
}

TEST(ValidateAttentionTest, RejectsHeadsNotMultipleOfKvHeads) {
  ExpectError(
      ValidateAttention(Attention({1, 6, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64}), {}).status(),
      StatusCode::kInvalidArgument, "multiple of k/v heads");
}

TEST(ValidateAttentionTest, RejectsWrongRank) {
  ExpectError(ValidateAttention(Attention({4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64}), {}).status(),
              StatusCode::kInvalidArgument, "q must have rank 4");
}

TEST(ValidateAttentionTest, RejectsMismatchedShapes) {
  ExpectError(
      ValidateAttention(Attention({2, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64}), {}).status(),
      StatusCode::kInvalidArgument, "k batch");
  ExpectError(
      ValidateAttention(Attention({1, 4, 8, 64}, {1, 4, 8, 32}, {1, 4, 8, 32}), {}).status(),
      StatusCode::kInvalidArgument, "k head_dim");
  ExpectError(
      ValidateAttention(Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 9, 64}), {}).status(),
      StatusCode::kInvalidArgument, "v kv_seq_len");
  ExpectError(
      ValidateAttention(Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 2, 8, 64}), {}).status(),
      StatusCode::kInvalidArgument, "v kv_heads");
}

TEST(ValidateAttentionTest, RejectsZeroNegativeAndOverflowingDims) {
  ExpectError(
      ValidateAttention(Attention({1, 4, 0, 64}, {1, 4, 8, 64}, {1, 4, 8, 64}), {}).status(),
      StatusCode::kInvalidArgument, "q.shape[2] is 0");
  AttentionInputs negative = Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64});
  negative.k.shape[1] = -4;
  ExpectError(ValidateAttention(negative, {}).status(), StatusCode::kInvalidArgument,
              "k.shape[1] is -4");
  AttentionInputs overflow = Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64});
  overflow.q.shape = {int64_t{1} << 40, int64_t{1} << 30, 1, 64};
  ExpectError(ValidateAttention(overflow, {}).status(), StatusCode::kInvalidArgument,
              "more elements than can be addressed");
  overflow.q.shape = {std::numeric_limits<int64_t>::max(), 2, 1, 1};
  ExpectError(ValidateAttention(overflow, {}).status(), StatusCode::kInvalidArgument,
              "can be addressed");
}

TEST(ValidateAttentionTest, RejectsWrongByteCount) {
  AttentionInputs in = Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64});
  in.v.data = in.v.data.first(in.v.data.size() - 1);
  ExpectError(ValidateAttention(in, {}).status(), StatusCode::kInvalidArgument,
              "v has 4095 bytes of data");
}

TEST(ValidateAttentionTest, RejectsMixedDtypes) {
  AttentionInputs in = Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64});
  in.k = View({1, 4, 8, 64}, DType::kFloat32);
  ExpectError(ValidateAttention(in, {}).status(), StatusCode::kInvalidArgument,
              "k is fp32 but q is fp16");
}

TEST(ValidateAttentionTest, RejectsNonFiniteScale) {
  AttentionInputs in = Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64});
  in.scale = std::numeric_limits<float>::quiet_NaN();
  ExpectError(ValidateAttention(in, {}).status(), StatusCode::kInvalidArgument, "finite");
  in.scale = std::numeric_limits<float>::infinity();
  ExpectError(ValidateAttention(in, {}).status(), StatusCode::kInvalidArgument, "finite");
}

// A finite scale whose scaled scores overflow fp32 gave OK with NaN rows (issue 18: +-3e38).
TEST(ValidateAttentionTest, RejectsScalesThatOverflowTheScores) {
  AttentionInputs fp32{View({1, 4, 8, 64}, DType::kFloat32),
                       View({1, 4, 8, 64}, DType::kFloat32),
                       View({1, 4, 8, 64}, DType::kFloat32),
                       true,
                       {}};
  for (float scale : {3e38f, -3e38f}) {
    fp32.scale = scale;
    ExpectError(ValidateAttention(fp32, {}).status(), StatusCode::kInvalidArgument,
                "overflows fp32");
  }
  fp32.scale = 1e30f;  // fp32 inputs: no static bound on the scores; allowed
  EXPECT_TRUE(ValidateAttention(fp32, {}).ok());
  // fp16: |q . k| <= 64 x 65504^2 = 2.7e11, so |scale| must stay under about 8.6e26.
  AttentionInputs fp16 = Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64});
  fp16.scale = 1e27f;
  ExpectError(ValidateAttention(fp16, {}).status(), StatusCode::kInvalidArgument,
              "too large for fp16 inputs");
  fp16.scale = -1e26f;
  EXPECT_TRUE(ValidateAttention(fp16, {}).ok());
}

TEST(ValidateAttentionTest, TensorAboveLimitIsResourceExhausted) {
  Limits limits;
  limits.max_tensor_bytes = 4096;
  ExpectError(
      ValidateAttention(Attention({1, 4, 8, 65}, {1, 4, 8, 65}, {1, 4, 8, 65}), limits).status(),
      StatusCode::kResourceExhausted, "limit of 4096 bytes");
  EXPECT_TRUE(
      ValidateAttention(Attention({1, 4, 8, 64}, {1, 4, 8, 64}, {1, 4, 8, 64}), limits).ok());
}

TEST(ValidateMatmulTest, BroadcastsBatchDimensions) {
  auto r = ValidateMatmul(View({3, 1, 17, 29}), View({5, 29, 11}), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->output.shape, (std::vector<int64_t>{3, 5, 17, 11}));
  EXPECT_EQ(r->dims.batch.count, 15);
  int64_t a = -1, b = -1;
  r->dims.batch.OperandIndices(7, &a, &b);  // (1, 2): a batch 1 (broadcast over 5), b batch 2
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
}

TEST(ValidateMatmulTest, AcceptsPlainMatrices) {
  auto r = ValidateMatmul(View({1, 1}), View({1, 7}), {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output.shape, (std::vector<int64_t>{1, 7}));
}

TEST(ValidateMatmulTest, RejectsBadShapes) {
  ExpectError(ValidateMatmul(View({4, 5}), View({6, 7}), {}).status(), StatusCode::kInvalidArgument,
              "inner dimensions differ");
  ExpectError(ValidateMatmul(View({2, 4, 5}), View({3, 5, 7}), {}).status(),
              StatusCode::kInvalidArgument, "do not broadcast");
  ExpectError(ValidateMatmul(View({5}), View({5, 7}), {}).status(), StatusCode::kInvalidArgument,
              "rank 2 to 8");
  ExpectError(ValidateMatmul(View({1, 1, 1, 1, 1, 1, 1, 1, 2, 2}), View({2, 2}), {}).status(),
              StatusCode::kInvalidArgument, "rank 2 to 8");
  ExpectError(ValidateMatmul(View({4, 5}), View({5, 7}, DType::kBFloat16), {}).status(),
              StatusCode::kInvalidArgument, "b is bf16 but a is fp16");
}

TEST(ValidateMatmulTest, OutputAboveLimitIsResourceExhausted) {
  Limits limits;
  limits.max_tensor_bytes = 1 << 16;
  // Inputs are small, but (256 x 1) @ (1 x 256) needs 128 KiB of fp16 output.
  ExpectError(ValidateMatmul(View({256, 1}), View({1, 256}), limits).status(),
              StatusCode::kResourceExhausted, "the output needs");
}

}  // namespace
}  // namespace an1
