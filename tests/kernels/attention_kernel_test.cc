// Every kernel of the attention family (kernels/attention/attention.h), on its own — no engine,
// no license — against a float64 reference, on the same inputs: kernel x dtype x head_dim x
// causal x awkward shapes (lengths of 1, primes, non-multiples of every tile, Sq > Sk and
// Sq < Sk, GQA and MQA, large magnitudes, negative and zero scales), outputs and LSE poisoned
// before every run. A new kernel joins kAllKernels and is tested here with no change.
// Label `gpu`: skipped, saying why, where no GPU is usable.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/attention/attention.h"
#include "tests/reference.h"

namespace an1 {
namespace {

namespace attention = kernels::attention;
using testing::AttentionCase;

// Device memory freed at scope exit.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(std::size_t bytes) { EXPECT_EQ(cudaMalloc(&ptr, bytes), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(ptr); }
};

class AttentionKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      GTEST_SKIP() << "no usable GPU: " << cudaGetErrorString(cudaGetLastError());
    }
    ASSERT_EQ(cudaGetDeviceProperties(&props_, 0), cudaSuccess);
  }
  cudaDeviceProp props_{};
};

struct Case {
  AttentionCase shape;
  float magnitude = 1.0f;      // inputs drawn from N(0, 1) times this
  std::optional<float> scale;  // nullopt: 1/sqrt(D)
};

TEST_F(AttentionKernelTest, EveryKernelMatchesTheFloat64Reference) {
  std::vector<Case> cases;
  for (int64_t d : {64, 128}) {
    for (AttentionCase s : std::vector<AttentionCase>{
             {1, 1, 1, 1, 1, d},      // everything of length 1
             {1, 2, 1, 1, 97, d},     // one query against many keys (MQA)
             {2, 4, 2, 37, 53, d},    // GQA, Sq < Sk, primes
             {1, 3, 1, 131, 67, d},   // Sq > Sk: rows that see no key when causal
             {2, 2, 2, 64, 64, d},    // exact tiles
             {1, 8, 2, 129, 257, d},  // one past a 128-row block, one past four 64-key tiles
             {3, 2, 1, 65, 1, d},     // one key
             {1, 2, 2, 200, 333, d}}) {
      cases.push_back({s, 1.0f, std::nullopt});
    }
    cases.push_back({{1, 2, 1, 61, 130, d}, 30.0f, std::nullopt});  // large scores, peaked softmax
    cases.push_back({{1, 2, 2, 33, 47, d}, 1.0f, -0.7f});           // negative scale
    cases.push_back({{1, 2, 2, 33, 47, d}, 1.0f, 0.0f});            // zero scale: uniform weights
    // Decode steps (Sq 1..16): group sizes 1, 4, 5, 8, 32; batch 1 and 300; Sk of 1, primes,
    // a multiple of a tile plus one; with and without KV splits (few blocks split, many don't).
    for (AttentionCase c : std::vector<AttentionCase>{
             {1, 4, 1, 1, 1, d},      // one key
             {300, 4, 1, 1, 37, d},   // batch 300: enough blocks, no split
             {2, 10, 2, 3, 1009, d},  // group 5 (does not divide the 16-row tile)
             {1, 8, 1, 16, 4099, d},  // group 8 x 16 queries: 128 rows, 8 row blocks, splits
             {1, 32, 1, 2, 2053, d},  // group 32 (MQA): 64 rows
             {3, 8, 8, 7, 65, d},     // group 1, Sq 7
             {1, 8, 2, 16, 5, d},     // Sq > Sk: rows that see no key when causal
             {1, 4, 1, 4, 8191, d},   // speculative decoding, many splits
         }) {
      cases.push_back({c, 1.0f, std::nullopt});
    }
    cases.push_back({{1, 4, 1, 1, 3001, d}, 1.0f, -0.3f});  // decode, negative scale, splits
  }
  // A long KV cache: Sk = 131075 (2^17 + 3), one 16-query step, no GQA.
  cases.push_back({{1, 2, 2, 16, 131075, 128}, 1.0f, std::nullopt});
  // Dense head_dim 128 from 8192 keys takes sm90's 176-key tiles (the output from registers):
  // primes, GQA, keys not a multiple of 176, a partial 128-row query block; just below and at
  // the threshold.
  cases.push_back({{1, 4, 2, 131, 8209, 128}, 1.0f, std::nullopt});
  cases.push_back({{2, 2, 1, 67, 8192, 128}, 1.0f, std::nullopt});
  cases.push_back({{1, 2, 2, 67, 8191, 128}, 1.0f, std::nullopt});
  std::mt19937_64 rng(2026);
  std::map<std::string_view, int> ran;  // cases each kernel ran
  for (attention::AttentionKernel kernel : attention::kAllKernels) {
    for (const Case& c : cases) {
      const AttentionCase& s = c.shape;
      for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
        for (bool causal : {true, false}) {
          attention::AttentionParams p;
          p.kernel = kernel;
          p.dtype =
              dtype == DType::kFloat16 ? kernels::ElementType::kF16 : kernels::ElementType::kBF16;
          p.batch = s.batch, p.heads = s.heads, p.kv_heads = s.kv_heads;
          p.q_len = s.q_len, p.kv_len = s.kv_len, p.head_dim = s.head_dim;
          p.causal = causal;
          p.scale = c.scale.value_or(1.0f / std::sqrt(static_cast<float>(s.head_dim)));
          const std::string what =
              std::string(attention::KernelName(kernel)) + " " + std::string(DTypeName(dtype)) +
              (causal ? " causal" : " dense") + " B" + std::to_string(s.batch) + " H" +
              std::to_string(s.heads) + " Hkv" + std::to_string(s.kv_heads) + " Sq" +
              std::to_string(s.q_len) + " Sk" + std::to_string(s.kv_len) + " D" +
              std::to_string(s.head_dim) + " x" + std::to_string(c.magnitude) + " scale " +
              std::to_string(p.scale);
          if (std::string why = attention::Supported(props_, p); !why.empty()) {
            // The decode kernel takes 1-16 queries; every other refusal is a fault.
            const bool prefill_on_decode =
                kernel == attention::AttentionKernel::kDecode && s.q_len > 16;
            if (!prefill_on_decode) ADD_FAILURE() << what << ": unsupported: " << why;
            continue;
          }
          ++ran[attention::KernelName(kernel)];
          const std::size_t q_n = s.batch * s.heads * s.q_len * s.head_dim;
          const std::size_t kv_n = s.batch * s.kv_heads * s.kv_len * s.head_dim;
          auto encode = [&](std::size_t n) {
            std::vector<float> raw = testing::RandomFloats(n, rng);
            for (float& x : raw) x *= c.magnitude;
            testing::Encoded e;
            e.bytes.resize(n * 2);
            ConvertFromFloat(dtype, raw.data(), n, e.bytes.data());
            e.values.resize(n);
            ConvertToFloat(dtype, e.bytes.data(), n, e.values.data());
            return e;
          };
          const testing::Encoded q = encode(q_n), k = encode(kv_n), v = encode(kv_n);
          DeviceBuffer dq(q.bytes.size()), dk(k.bytes.size()), dv(v.bytes.size()),
              dout(q.bytes.size()), dlse(s.batch * s.heads * s.q_len * sizeof(float));
          ASSERT_EQ(cudaMemcpy(dq.ptr, q.bytes.data(), q.bytes.size(), cudaMemcpyHostToDevice),
                    cudaSuccess);
          ASSERT_EQ(cudaMemcpy(dk.ptr, k.bytes.data(), k.bytes.size(), cudaMemcpyHostToDevice),
                    cudaSuccess);
          ASSERT_EQ(cudaMemcpy(dv.ptr, v.bytes.data(), v.bytes.size(), cudaMemcpyHostToDevice),
                    cudaSuccess);
          // Poisoned: NaN in every output element and LSE entry.
          ASSERT_EQ(cudaMemset(dout.ptr, 0xff, q.bytes.size()), cudaSuccess);
          ASSERT_EQ(cudaMemset(dlse.ptr, 0xff, s.batch * s.heads * s.q_len * sizeof(float)),
                    cudaSuccess);
          p.q = dq.ptr, p.k = dk.ptr, p.v = dv.ptr, p.o = dout.ptr;
          p.lse = static_cast<float*>(dlse.ptr);
          const std::size_t workspace_bytes = attention::WorkspaceBytes(props_, p);
          DeviceBuffer workspace(std::max<std::size_t>(workspace_bytes, 1));
          const kernels::KernelStatus ran = attention::Run(p, workspace.ptr, workspace_bytes, 0);
          ASSERT_TRUE(ran.ok()) << what << ": " << ran.message;
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;

          std::vector<std::byte> out_bytes(q.bytes.size());
          std::vector<float> lse(s.batch * s.heads * s.q_len);
          ASSERT_EQ(
              cudaMemcpy(out_bytes.data(), dout.ptr, out_bytes.size(), cudaMemcpyDeviceToHost),
              cudaSuccess);
          ASSERT_EQ(
              cudaMemcpy(lse.data(), dlse.ptr, lse.size() * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
          const std::vector<float> got = testing::Decode(out_bytes, dtype);
          for (float x : got) ASSERT_TRUE(std::isfinite(x)) << what << ": unwritten or NaN output";
          const std::vector<double> want =
              testing::ReferenceAttention(s, q.values, k.values, v.values, causal, p.scale);
          EXPECT_LE(testing::RelativeError(got, want), testing::Tolerance(dtype)) << what;
          const std::vector<double> want_lse = ReferenceLse(s, q.values, k.values, causal, p.scale);
          for (std::size_t i = 0; i < lse.size(); ++i) {
            if (std::isinf(want_lse[i])) {
              ASSERT_TRUE(std::isinf(lse[i]) && lse[i] < 0) << what << " lse row " << i;
            } else {
              ASSERT_NEAR(lse[i], want_lse[i], 1e-3 * std::max(1.0, std::fabs(want_lse[i])))
                  << what << " lse row " << i;
            }
          }
        }
      }
    }
  }
  for (attention::AttentionKernel kernel : attention::kAllKernels) {
    EXPECT_GE(ran[attention::KernelName(kernel)], 40) << attention::KernelName(kernel);
  }
}

// Huge scores (inputs of magnitude 1e2 to 1e5): the row maximum contributes exactly 1, so the
// softmax is exact rather than inf, NaN or zeros (tests/reference.h, MakeHugeScoreInputs).
TEST_F(AttentionKernelTest, EveryKernelKeepsHugeScoresExact) {
  std::mt19937_64 rng(133120);
  for (attention::AttentionKernel kernel : attention::kAllKernels) {
    for (int64_t d : {64, 128}) {
      for (AttentionCase s : std::vector<AttentionCase>{{1, 2, 2, 1, 1, d},
                                                        {1, 2, 1, 64, 64, d},
                                                        {1, 2, 2, 130, 130, d},
                                                        {1, 8, 2, 4, 1000, d}}) {
        for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
          for (float magnitude : testing::HugeScoreMagnitudes(dtype)) {
            for (bool causal : {true, false}) {
              const testing::HugeScoreInputs x =
                  testing::MakeHugeScoreInputs(s, dtype, magnitude, rng);
              attention::AttentionParams p;
              p.kernel = kernel;
              p.dtype = dtype == DType::kFloat16 ? kernels::ElementType::kF16
                                                 : kernels::ElementType::kBF16;
              p.batch = s.batch, p.heads = s.heads, p.kv_heads = s.kv_heads;
              p.q_len = s.q_len, p.kv_len = s.kv_len, p.head_dim = s.head_dim;
              p.causal = causal;
              p.scale = 1.0f / std::sqrt(static_cast<float>(d));
              if (!attention::Supported(props_, p).empty()) continue;  // decode: Sq <= 16 only
              DeviceBuffer dq(x.q.bytes.size()), dk(x.k.bytes.size()), dv(x.v.bytes.size()),
                  dout(x.q.bytes.size());
              cudaMemcpy(dq.ptr, x.q.bytes.data(), x.q.bytes.size(), cudaMemcpyHostToDevice);
              cudaMemcpy(dk.ptr, x.k.bytes.data(), x.k.bytes.size(), cudaMemcpyHostToDevice);
              cudaMemcpy(dv.ptr, x.v.bytes.data(), x.v.bytes.size(), cudaMemcpyHostToDevice);
              cudaMemset(dout.ptr, 0xff, x.q.bytes.size());
              p.q = dq.ptr, p.k = dk.ptr, p.v = dv.ptr, p.o = dout.ptr;
              const std::size_t workspace_bytes = attention::WorkspaceBytes(props_, p);
              DeviceBuffer workspace(std::max<std::size_t>(workspace_bytes, 1));
              ASSERT_TRUE(attention::Run(p, workspace.ptr, workspace_bytes, 0).ok());
              std::vector<std::byte> out_bytes(x.q.bytes.size());
              ASSERT_EQ(
                  cudaMemcpy(out_bytes.data(), dout.ptr, out_bytes.size(), cudaMemcpyDeviceToHost),
                  cudaSuccess);
              const std::vector<float> got = testing::Decode(out_bytes, dtype);
              const std::string what =
                  std::string(attention::KernelName(kernel)) + " " + std::string(DTypeName(dtype)) +
                  " magnitude " + std::to_string(magnitude) + " D" + std::to_string(d) + " Sq" +
                  std::to_string(s.q_len) + (causal ? " causal" : " dense");
              for (float y : got) ASSERT_TRUE(std::isfinite(y)) << what;
              const auto want = testing::ReferenceAttention(s, x.q.values, x.k.values, x.v.values,
                                                            causal, p.scale);
              EXPECT_LE(testing::RelativeError(got, want), testing::Tolerance(dtype)) << what;
            }
          }
        }
      }
    }
  }
}

// The dispatcher picks the decode kernel for 1-16 queries and sm90 beyond, and labels what it
// launches; the split rule cuts a lone long sequence and leaves a large batch whole.
TEST_F(AttentionKernelTest, DispatchByShape) {
  attention::AttentionParams p;
  p.batch = 1, p.heads = 32, p.kv_heads = 8, p.head_dim = 128, p.kv_len = 131072;
  p.q_len = 1;
  EXPECT_EQ(attention::SelectKernel(props_, p), attention::AttentionKernel::kDecode);
  EXPECT_EQ(attention::KernelLabel(props_, p).rfind("an1.decode.splitkv/", 0), 0u)
      << attention::KernelLabel(props_, p);
  EXPECT_GT(attention::WorkspaceBytes(props_, p), 0u);
  p.batch = 256, p.kv_len = 1024;
  EXPECT_EQ(attention::KernelLabel(props_, p), "an1.decode");
  EXPECT_EQ(attention::WorkspaceBytes(props_, p), 0u);
  p.q_len = 16;
  EXPECT_EQ(attention::SelectKernel(props_, p), attention::AttentionKernel::kDecode);
  p.q_len = 17;  // prefill: the Hopper kernel (the kernels are built for sm_90a only)
  EXPECT_EQ(attention::SelectKernel(props_, p), attention::AttentionKernel::kSm90);
  EXPECT_EQ(attention::KernelLabel(props_, p), "an1.fwd.sm90");
  p.kernel = attention::AttentionKernel::kSm80;  // still runs what it is asked for
  EXPECT_EQ(attention::KernelLabel(props_, p), "an1.fwd.sm80");
}

// Coverage is checked before any launch, with reasons a person can act on.
TEST_F(AttentionKernelTest, UnsupportedProblemsSayWhy) {
  attention::AttentionParams p;
  p.batch = p.heads = p.kv_heads = 1;
  p.q_len = p.kv_len = 8;
  p.head_dim = 96;
  EXPECT_NE(attention::Supported(props_, p).find("head_dim 64 or 128, not 96"), std::string::npos)
      << attention::Supported(props_, p);
  p.head_dim = 64;
  p.dtype = kernels::ElementType::kF32;
  EXPECT_NE(attention::Supported(props_, p).find("fp16 and bf16"), std::string::npos);
  p.dtype = kernels::ElementType::kF16;
  p.heads = 3, p.kv_heads = 2;
  EXPECT_NE(attention::Supported(props_, p).find("multiple of kv_heads"), std::string::npos);
  p.heads = 2;
  EXPECT_EQ(attention::Run(p, nullptr, 0, 0).kind, kernels::KernelStatus::Kind::kUnsupported);
}

// A tensor off a 16-byte boundary (a CUDA IPC region at an odd offset) is refused by every
// kernel before launch, never a misaligned-address fault: the device keeps working.
TEST_F(AttentionKernelTest, MisalignedTensorsAreRefusedWithoutAFault) {
  attention::AttentionParams p;
  p.batch = 1, p.heads = 2, p.kv_heads = 1, p.kv_len = 300, p.head_dim = 64;
  p.scale = 0.125f;
  const std::size_t bytes = 2 * 300 * 64 * 2 + 64;
  DeviceBuffer q(bytes), k(bytes), v(bytes), o(bytes), workspace(1 << 20);
  ASSERT_EQ(cudaMemset(q.ptr, 0, bytes), cudaSuccess);
  ASSERT_EQ(cudaMemset(k.ptr, 0, bytes), cudaSuccess);
  ASSERT_EQ(cudaMemset(v.ptr, 0, bytes), cudaSuccess);
  auto at = [](void* base, std::size_t offset) { return static_cast<std::byte*>(base) + offset; };
  for (attention::AttentionKernel kernel : attention::kAllKernels) {
    for (int64_t q_len : {1, 200}) {
      p.kernel = kernel, p.q_len = q_len;
      if (!attention::Supported(props_, p).empty()) continue;  // decode: Sq <= 16 only
      for (std::size_t offset : {2, 8}) {
        for (int which = 0; which < 4; ++which) {
          p.q = at(q.ptr, which == 0 ? offset : 0), p.k = at(k.ptr, which == 1 ? offset : 0);
          p.v = at(v.ptr, which == 2 ? offset : 0), p.o = at(o.ptr, which == 3 ? offset : 0);
          const kernels::KernelStatus ran = attention::Run(p, workspace.ptr, 1 << 20, 0);
          EXPECT_EQ(ran.kind, kernels::KernelStatus::Kind::kUnsupported)
              << attention::KernelName(kernel) << " tensor " << which << " offset " << offset;
          EXPECT_NE(ran.message.find("16-byte"), std::string::npos) << ran.message;
        }
      }
      p.q = q.ptr, p.k = k.ptr, p.v = v.ptr, p.o = o.ptr;  // aligned: runs
      EXPECT_TRUE(attention::Run(p, workspace.ptr, 1 << 20, 0).ok())
          << attention::KernelName(kernel);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << attention::KernelName(kernel);
    }
  }
}

}  // namespace
}  // namespace an1
