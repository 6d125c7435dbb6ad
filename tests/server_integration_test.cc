// The real server on an ephemeral loopback port, called through the real client library:
// correct results and every bad input answered with its status code while the server keeps
// serving.
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

TEST_F(ServerTest, HealthAndInfo) {
  bool serving = false;
  ASSERT_TRUE(client_->Health(&serving).ok());
  EXPECT_TRUE(serving);
  v1::GetServerInfoResponse info;
  ASSERT_TRUE(client_->Info(&info).ok());
  EXPECT_FALSE(info.version().empty());
  EXPECT_FALSE(info.gpu_mode());
  EXPECT_NE(info.mode_reason().find("disabled"), std::string::npos);
  ASSERT_EQ(info.backends_size(), 2);
  EXPECT_EQ(info.limits().max_message_bytes(), static_cast<uint64_t>(kMaxMessageBytes));
  EXPECT_FALSE(info.license().valid());
}

TEST_F(ServerTest, AttentionMatchesReferenceForEveryDtype) {
  for (v1::DType dtype : {v1::DTYPE_FP32, v1::DTYPE_FP16, v1::DTYPE_BF16}) {
    for (bool causal : {true, false}) {
      std::vector<float> q, k, v;
      AttentionArgs args;
      args.q = Random({2, 4, 37, 64}, dtype, rng_, &q);
      args.k = Random({2, 2, 53, 64}, dtype, rng_, &k);
      args.v = Random({2, 2, 53, 64}, dtype, rng_, &v);
      args.causal = causal;
      args.scale = 0.2f;
      CallResult result;
      grpc::Status status = client_->Attention(std::move(args), &result);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(result.info.backend(), v1::BACKEND_BASELINE);
      EXPECT_EQ(result.info.requested(), v1::BACKEND_AUTO);
      EXPECT_NE(result.info.backend_reason().find("an1 is unavailable"), std::string::npos);
      EXPECT_EQ(result.info.device(), "cpu");
      EXPECT_EQ(result.info.kernel(), "baseline.cpu");
      EXPECT_FALSE(result.lse.has_value());  // not asked for
      EXPECT_GT(result.info.compute_seconds(), 0);
      EXPECT_EQ(result.output.shape, (std::vector<int64_t>{2, 4, 37, 64}));
      EXPECT_EQ(result.output.dtype, dtype);
      const std::vector<double> want =
          testing::ReferenceAttention({2, 4, 2, 37, 53, 64}, q, k, v, causal, 0.2);
      const double tolerance = dtype == v1::DTYPE_FP32   ? 1e-5
                               : dtype == v1::DTYPE_FP16 ? 2e-3
                                                         : 1e-2;
      EXPECT_LE(testing::RelativeError(client::DecodeElements(result.output.bytes, dtype), want),
                tolerance);
    }
  }
}

TEST_F(ServerTest, DefaultsAreCausalWithInverseSqrtScale) {
  std::vector<float> q, k, v;
  AttentionArgs args;
  args.q = Random({1, 1, 9, 16}, v1::DTYPE_FP32, rng_, &q);
  args.k = Random({1, 1, 9, 16}, v1::DTYPE_FP32, rng_, &k);
  args.v = Random({1, 1, 9, 16}, v1::DTYPE_FP32, rng_, &v);
  CallResult result;
  ASSERT_TRUE(client_->Attention(std::move(args), &result).ok());
  const auto want = testing::ReferenceAttention({1, 1, 1, 9, 9, 16}, q, k, v, true, 0.25);
  EXPECT_LE(
      testing::RelativeError(client::DecodeElements(result.output.bytes, v1::DTYPE_FP32), want),
      1e-5);
}

// return_lse: (B, H, Sq) fp32 inline, ln(sum_j exp(q_i . k_j * scale)) per query row, -inf for
// the rows a causal mask leaves without a key (Sq > Sk); the output is the same as without it.
TEST_F(ServerTest, ReturnsTheLogSumExpWhenAsked) {
  const testing::AttentionCase c{2, 4, 2, 37, 23, 16};
  for (v1::DType dtype : {v1::DTYPE_FP32, v1::DTYPE_FP16}) {
    for (bool causal : {true, false}) {
      std::vector<float> q, k, v;
      AttentionArgs args;
      args.q = Random({c.batch, c.heads, c.q_len, c.head_dim}, dtype, rng_, &q);
      args.k = Random({c.batch, c.kv_heads, c.kv_len, c.head_dim}, dtype, rng_, &k);
      args.v = Random({c.batch, c.kv_heads, c.kv_len, c.head_dim}, dtype, rng_, &v);
      args.causal = causal;
      args.scale = 0.3f;
      args.return_lse = true;
      CallResult result;
      grpc::Status status = client_->Attention(std::move(args), &result);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_TRUE(result.lse.has_value());
      EXPECT_EQ(result.lse->dtype, v1::DTYPE_FP32);
      EXPECT_EQ(result.lse->shape, (std::vector<int64_t>{c.batch, c.heads, c.q_len}));
      EXPECT_FALSE(result.lse->region.has_value());
      const std::vector<float> lse = client::DecodeElements(result.lse->bytes, v1::DTYPE_FP32);
      EXPECT_EQ(testing::CompareLse(lse, testing::ReferenceLse(c, q, k, causal, 0.3), 1e-4, 1e-5),
                "")
          << "causal " << causal << " dtype " << dtype;
      if (causal) EXPECT_EQ(lse[0], -INFINITY);  // row 0 of 37 sees none of 23 keys
      const double tolerance = dtype == v1::DTYPE_FP32 ? 1e-5 : 2e-3;
      EXPECT_LE(testing::RelativeError(client::DecodeElements(result.output.bytes, dtype),
                                       testing::ReferenceAttention(c, q, k, v, causal, 0.3)),
                tolerance);
    }
  }
}

// The LSE travels inline, so it counts toward the response size limit: an output that fits alone
// (2.5 MiB of the 4 MiB limit) does not fit with its 2.5 MiB LSE.
TEST_F(ServerTest, LseCountsTowardTheResponseLimit) {
  auto args = [this](bool lse) {
    AttentionArgs a;
    a.q = Random({1, 1, 655360, 1}, v1::DTYPE_FP32, rng_);
    a.k = Random({1, 1, 1, 1}, v1::DTYPE_FP32, rng_);
    a.v = Random({1, 1, 1, 1}, v1::DTYPE_FP32, rng_);
    a.return_lse = lse;
    return a;
  };
  CallResult result;
  grpc::Status status = client_->Attention(args(false), &result);
  EXPECT_TRUE(status.ok()) << status.error_message();
  status = client_->Attention(args(true), &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("the output and its log-sum-exp need 2621440 + 2621440"),
            std::string::npos)
      << status.error_message();
  ExpectStillServing();
}

TEST_F(ServerTest, MatmulBroadcastsAndMatchesReference) {
  std::vector<float> a, b;
  MatmulArgs args;
  args.a = Random({3, 1, 17, 29}, v1::DTYPE_FP32, rng_, &a);
  args.b = Random({5, 29, 11}, v1::DTYPE_FP32, rng_, &b);
  CallResult result;
  ASSERT_TRUE(client_->Matmul(std::move(args), &result).ok());
  std::vector<int64_t> shape;
  const auto want = testing::ReferenceMatmul({3, 1, 17, 29}, a, {5, 29, 11}, b, &shape);
  EXPECT_EQ(result.output.shape, shape);
  EXPECT_LE(
      testing::RelativeError(client::DecodeElements(result.output.bytes, v1::DTYPE_FP32), want),
      1e-5);
}

TEST_F(ServerTest, WrongByteCountIsInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.k.bytes.pop_back();
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "k has 447 bytes");
}

TEST_F(ServerTest, MismatchedShapesAreInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.v = Random({1, 2, 6, 8}, v1::DTYPE_FP32, rng_);
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "v kv_seq_len");
}

TEST_F(ServerTest, HeadsNotDivisibleIsInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.q = Random({1, 3, 5, 8}, v1::DTYPE_FP32, rng_);
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT,
                       "multiple of k/v heads");
}

TEST_F(ServerTest, UnknownOrMissingDtypeIsInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.q.dtype = static_cast<v1::DType>(9);
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "q.dtype 9");
  args = ValidAttention();
  args.v.dtype = v1::DTYPE_UNSPECIFIED;
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "v.dtype 0");
}

TEST_F(ServerTest, MixedDtypesAreInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.k = Random({1, 2, 7, 8}, v1::DTYPE_FP16, rng_);
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT,
                       "k is fp16 but q is fp32");
}

TEST_F(ServerTest, ZeroNegativeAndOverflowingDimsAreInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.q.shape = {1, 4, 0, 8};
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "q.shape[2] is 0");
  args = ValidAttention();
  args.k.shape = {1, -2, 7, 8};
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "k.shape[1] is -2");
  args = ValidAttention();
  args.q.shape = {int64_t{1} << 40, int64_t{1} << 40, 5, 8};
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "can be addressed");
  args = ValidAttention();
  args.q.shape = {1, 4, 5};
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "rank 4");
}

TEST_F(ServerTest, NonFiniteScaleIsInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.scale = std::nanf("");
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "finite");
}

TEST_F(ServerTest, ExplicitAn1IsFailedPreconditionWithReason) {
  AttentionArgs args = ValidAttention();
  args.backend = v1::BACKEND_AN1;
  ExpectAttentionError(std::move(args), grpc::StatusCode::FAILED_PRECONDITION,
                       "backend an1 is unavailable: no valid license: no license key configured "
                       "(set AN1_LICENSE_KEY or --license-file); no usable GPU");
}

TEST_F(ServerTest, UnknownBackendIsInvalidArgument) {
  AttentionArgs args = ValidAttention();
  args.backend = static_cast<v1::Backend>(7);
  ExpectAttentionError(std::move(args), grpc::StatusCode::INVALID_ARGUMENT, "backend 7");
}

TEST_F(ServerTest, MessageAboveLimitIsResourceExhausted) {
  AttentionArgs args;
  // 3 x 2 MiB of fp32 is above the server's 4 MiB message limit.
  args.q = Random({1, 8, 256, 256}, v1::DTYPE_FP32, rng_);
  args.k = Random({1, 8, 256, 256}, v1::DTYPE_FP32, rng_);
  args.v = Random({1, 8, 256, 256}, v1::DTYPE_FP32, rng_);
  CallResult result;
  grpc::Status status = client_->Attention(std::move(args), &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  ExpectStillServing();
}

TEST_F(ServerTest, OutputAboveMessageLimitIsResourceExhausted) {
  MatmulArgs args;  // 1 MiB of input, 4 MiB of output
  args.a = Random({1024, 64}, v1::DTYPE_FP32, rng_);
  args.b = Random({64, 1024}, v1::DTYPE_FP32, rng_);
  CallResult result;
  grpc::Status status = client_->Matmul(std::move(args), &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("more than fits in a response"), std::string::npos);
  ExpectStillServing();
}

TEST_F(ServerTest, MatmulShapeErrorsAreInvalidArgument) {
  MatmulArgs args;
  args.a = Random({4, 5}, v1::DTYPE_FP32, rng_);
  args.b = Random({6, 7}, v1::DTYPE_FP32, rng_);
  CallResult result;
  grpc::Status status = client_->Matmul(std::move(args), &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("inner dimensions differ"), std::string::npos);
  ExpectStillServing();
}

TEST_F(ServerTest, MissingTensorAndSharedRegionsAreRefused) {
  // Missing and region-backed tensors cannot be built through the typed client, so use the stub.
  auto stub = v1::An1::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                                   grpc::InsecureChannelCredentials()));
  v1::MatmulRequest request;
  request.mutable_a()->set_dtype(v1::DTYPE_FP32);
  request.mutable_a()->add_shape(1);
  request.mutable_a()->add_shape(1);
  request.mutable_a()->set_inline_data(std::string(4, '\0'));
  v1::MatmulResponse response;
  {
    grpc::ClientContext context;
    grpc::Status status = stub->Matmul(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), "tensor b is missing");
  }
  *request.mutable_b() = request.a();
  request.mutable_b()->mutable_region()->set_region("someone-elses");
  {
    grpc::ClientContext context;
    grpc::Status status = stub->Matmul(&context, request, &response);
    // A region needs the client's id (regions are per client); this stub sends none.
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  }
  request.mutable_b()->clear_region();
  {
    grpc::ClientContext context;
    grpc::Status status = stub->Matmul(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("no data"), std::string::npos);
  }
  ExpectStillServing();
}

// Value of a sample line `name{labels} value` in the Prometheus text format, or -1.

}  // namespace
}  // namespace an1
