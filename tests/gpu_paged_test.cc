// Paged attention on the GPU (label `gpu`): the an1 backend's paged kernel, and the GPU
// baseline's gather + GEMM + softmax + GEMM path, against the float64
// reference of tests/paged_case.h — ragged batches (lengths of 1, primes, prefill chunks beside
// decode rows, a sequence with no query rows), page sizes 1 to 256, GQA 5, windows, softcap,
// non-causal, fp16/bf16, head_dim 64/128, KV splits, the LSE — with every cache slot that must
// not be read holding NaN and the output poisoned. The append runs on both paths: caches in host
// memory (appended on the host, then uploaded) and caches in GPU memory (appended by the kernel
// in place, as for a CUDA IPC region). Skipped, with the reason, where no GPU is usable.
#include <gtest/gtest.h>
#if AN1_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include <cmath>
#include <cstring>

#include "tests/engine_runner.h"
#include "tests/gpu_engine_fixture.h"
#include "tests/paged_case.h"

namespace an1 {
namespace {

using testing::PagedCase;
using testing::PagedData;
using testing::PagedRequest;

// Rows appended to four sequences, one of 2077 keys (KV splits), GQA 4, pages of 16.
PagedCase AppendCase() {
  PagedCase c;
  c.kv_lens = {40, 3, 2077, 1};
  c.q_lens = {5, 3, 1, 1};
  c.heads = 8;
  c.kv_heads = 2;
  c.head_dim = 128;
  c.page_size = 16;
  c.append = true;
  return c;
}

class GpuPagedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string;
    engine_ = testing::MakeLicensedGpuEngine(skip_reason_).release();
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }
  void SetUp() override {
    if (engine_ == nullptr) GTEST_SKIP() << *skip_reason_;
    ASSERT_TRUE(engine_->Info().gpu_mode) << engine_->Info().mode_reason;
  }

  // Runs `c` through backend_ (an1 unless a test says otherwise) and checks output and LSE
  // against float64; with
  // `device_caches` the caches live in GPU memory and are checked for the appended rows. A
  // non-empty `label_suffix` is the end the kernel's label must have.
  void Check(const PagedCase& c, DType dtype, uint64_t seed, bool device_caches = false,
             const std::string& label_suffix = "") {
    std::mt19937_64 rng(seed);
    const PagedData d = testing::MakePagedData(c, dtype, rng);
    PagedRequest r(c, d, dtype);
    void* device_k = nullptr;
    void* device_v = nullptr;
#if !AN1_HAVE_CUDA
    if (device_caches) GTEST_SKIP() << "built without CUDA";
#else
    if (device_caches) {
      ASSERT_EQ(cudaMalloc(&device_k, r.k_cache.size()), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&device_v, r.v_cache.size()), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(device_k, r.k_cache.data(), r.k_cache.size(), cudaMemcpyHostToDevice),
                cudaSuccess);
      ASSERT_EQ(cudaMemcpy(device_v, r.v_cache.data(), r.v_cache.size(), cudaMemcpyHostToDevice),
                cudaSuccess);
      const std::span<std::byte> k{static_cast<std::byte*>(device_k), r.k_cache.size()};
      const std::span<std::byte> v{static_cast<std::byte*>(device_v), r.v_cache.size()};
      r.inputs.k_cache.data = k;
      r.inputs.v_cache.data = v;
      r.inputs.k_cache.device = r.inputs.v_cache.device = 0;
      if (c.append) {
        r.inputs.k_cache_writable = k;
        r.inputs.v_cache_writable = v;
      }
    }
#endif
    std::fill(r.lse.begin(), r.lse.end(), 12345.0f);  // poisoned
    std::vector<std::byte> out(
        static_cast<std::size_t>(d.total_q * c.heads * c.head_dim) * DTypeSize(dtype),
        std::byte{0x7f});  // poisoned: NaN in fp16 and bf16
    const testing::RunResult result = testing::RunToCompletion(
        *engine_, engine_->PreparePagedAttention(r.inputs, backend_), &out);
    ASSERT_TRUE(result.status.ok()) << result.status.ToString();
    const char* label = backend_ == BackendKind::kAn1 ? "an1.paged" : "baseline.gpu.paged";
    EXPECT_EQ(result.report.kernel.rfind(label, 0), 0u) << result.report.kernel;
    if (!label_suffix.empty()) {
      EXPECT_TRUE(result.report.kernel.ends_with(label_suffix)) << result.report.kernel;
    }
    std::vector<double> want_lse;
    const std::vector<double> want =
        testing::ReferencePaged(c, d, 1.0 / std::sqrt(double(c.head_dim)), &want_lse);
    const std::vector<float> got = testing::Decode(out, dtype);
    ASSERT_EQ(got.size(), want.size());
    for (float x : got) ASSERT_TRUE(std::isfinite(x)) << "a NaN slot was read, or a row unwritten";
    EXPECT_LE(testing::RelativeError(got, want), testing::Tolerance(dtype));
    EXPECT_EQ(testing::CompareLse(r.lse, want_lse, 1e-3, 1e-4), "");
#if AN1_HAVE_CUDA
    if (device_caches) {
      std::vector<std::byte> k_after(r.k_cache.size());
      ASSERT_EQ(cudaMemcpy(k_after.data(), device_k, k_after.size(), cudaMemcpyDeviceToHost),
                cudaSuccess);
      if (c.append) {  // each appended row where its page table puts it
        const std::size_t slot = c.kv_heads * c.head_dim * DTypeSize(dtype);
        for (std::size_t b = 0; b < c.kv_lens.size(); ++b) {
          for (int64_t l = 0; l < c.q_lens[b]; ++l) {
            const int64_t j = c.kv_lens[b] - c.q_lens[b] + l;
            const int64_t page = d.page_table[b * d.max_pages + j / c.page_size];
            EXPECT_EQ(std::memcmp(k_after.data() + (page * c.page_size + j % c.page_size) * slot,
                                  d.k_new.bytes.data() + (d.cu_seqlens[b] + l) * slot, slot),
                      0)
                << "sequence " << b << " row " << l;
          }
        }
      }
      cudaFree(device_k);
      cudaFree(device_v);
    }
#endif
  }

  // Calls check(dtype, head_dim, page_size) for fp16 and bf16, head_dim 64 and 128 and each of
  // `page_sizes`, with the three in the failure trace.
  template <typename Fn>
  static void ForEachLayout(std::initializer_list<int64_t> page_sizes, Fn check) {
    for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
      for (int64_t head_dim : {64, 128}) {
        for (int64_t page_size : page_sizes) {
          SCOPED_TRACE(std::string(DTypeName(dtype)) + " head_dim " + std::to_string(head_dim) +
                       " page_size " + std::to_string(page_size));
          check(dtype, head_dim, page_size);
        }
      }
    }
  }

  // Sliding windows (each side bounded, unbounded, empty), with softcap (but for one), causal and
  // not, over three sequences of ragged lengths; bf16.
  void CheckWindows(int64_t head_dim, uint64_t seed) {
    PagedCase c;
    c.kv_lens = {97, 12, 400};
    c.q_lens = {9, 12, 2};
    c.head_dim = head_dim;
    for (bool causal : {true, false}) {
      for (auto [left, right] : {std::pair{0, 0}, {7, -1}, {-1, 3}, {16, 5}, {200, -1}}) {
        c.causal = causal;
        c.window_left = left;
        c.window_right = right;
        c.softcap = left == 7 ? 0.0f : 1.5f;
        SCOPED_TRACE("causal " + std::to_string(causal) + " window " + std::to_string(left) + "," +
                     std::to_string(right));
        Check(c, DType::kBFloat16, seed);
      }
    }
  }

  BackendKind backend_ = BackendKind::kAn1;
  static inline Engine* engine_ = nullptr;
  static inline std::string* skip_reason_ = nullptr;
};

TEST_F(GpuPagedTest, RaggedPrimesAcrossPageSizesAndDtypes) {
  ForEachLayout({1, 8, 16, 64, 256}, [&](DType dtype, int64_t head_dim, int64_t page_size) {
    PagedCase c;
    c.kv_lens = {1, 37, 131, 2, 1000, 64};
    c.q_lens = {1, 1, 17, 0, 3, 64};  // sequence 3: no query rows, skipped
    c.heads = 8;
    c.kv_heads = 2;
    c.head_dim = head_dim;
    c.page_size = page_size;
    Check(c, dtype, 10 + page_size);
  });
}

TEST_F(GpuPagedTest, MixedPrefillAndDecodeWithSplits) {
  PagedCase c;
  c.kv_lens = {300, 5000, 1, 4099};  // long ones: the KV length is split across blocks
  c.q_lens = {300, 1, 1, 16};        // a whole prefill chunk beside decode and speculative rows
  c.heads = 32;
  c.kv_heads = 8;
  c.head_dim = 128;
  Check(c, DType::kFloat16, 21);
}

// Causal prefill chunks of every length class (one query block, several, a partial last one)
// over keys that end inside a page and inside a tile, GQA 4; on Hopper with pages of 16 slots
// or more they run in the sm90 kernel (one page per TMA box, the last page's V rows past kv_len
// zeroed: the slots there hold NaN), else in the sm80 kernel.
TEST_F(GpuPagedTest, PrefillChunksInTheHopperKernel) {
  int major = 0;
#if AN1_HAVE_CUDA
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
#endif
  ForEachLayout({8, 16, 32, 128, 256}, [&](DType dtype, int64_t head_dim, int64_t page_size) {
    PagedCase c;
    // Keys ending mid-page and mid-tile, on a page boundary mid-tile (160), on a tile (256); a
    // partial query block followed by another chunk and by a decode row. (A 4099-key case below:
    // the float64 reference is slow.)
    c.kv_lens = {257, 1031, 160, 130, 256, 1};
    c.q_lens = {257, 131, 40, 17, 19, 1};
    c.heads = 8;
    c.kv_heads = 2;
    c.head_dim = head_dim;
    c.page_size = page_size;
    const bool sm90 = major == 9 && page_size >= 16;
    Check(c, dtype, 70 + page_size, /*device_caches=*/false, sm90 ? "+sm90" : "+sm80");
  });
  {  // more work tiles (9 query blocks x 32 heads) than the H200's 132 SMs: the persistent loop's
     // second and later tiles per block (ring phases carried over from partial tiles)
    PagedCase c;
    c.kv_lens = {1031, 301, 130};
    c.q_lens = {600, 300, 17};
    c.heads = 32;
    c.kv_heads = 8;
    c.head_dim = 128;
    c.page_size = 16;
    Check(c, DType::kBFloat16, 78, /*device_caches=*/false, major == 9 ? "+sm90" : "+sm80");
  }
  PagedCase c;  // the step's rows appended in GPU memory first, then read by the sm90 kernel
  c.kv_lens = {4099, 45, 2};
  c.q_lens = {200, 45, 1};
  c.heads = 4;
  c.kv_heads = 4;
  c.head_dim = 128;
  c.page_size = 64;
  c.append = true;
  Check(c, DType::kFloat16, 79, /*device_caches=*/true, major == 9 ? "+sm90" : "+sm80");
}

TEST_F(GpuPagedTest, WindowsSoftcapNonCausal) { CheckWindows(64, 31); }

TEST_F(GpuPagedTest, GqaGroupFiveAndMqa) {
  PagedCase c;
  c.kv_lens = {101, 7, 555};
  c.q_lens = {19, 2, 1};
  c.heads = 10;
  c.kv_heads = 2;
  c.head_dim = 128;
  Check(c, DType::kFloat16, 41);
  c.kv_heads = 1;
  Check(c, DType::kBFloat16, 42);
}

TEST_F(GpuPagedTest, AppendWithHostCaches) {
  PagedCase c;
  c.kv_lens = {40, 3, 77, 1};
  c.q_lens = {5, 3, 1, 1};
  c.head_dim = 64;
  c.append = true;
  Check(c, DType::kFloat16, 51);
}

TEST_F(GpuPagedTest, AppendInGpuMemoryIsOrderedBeforeTheReads) {
  PagedCase c = AppendCase();
  Check(c, DType::kBFloat16, 61, /*device_caches=*/true);
  c.append = false;
  Check(c, DType::kFloat16, 62, /*device_caches=*/true);
}

// The GPU baseline's paged attention (what `--backend baseline` serves on a GPU): the same
// semantics, checked the same way, over every feature at once: ragged lengths with a skipped
// sequence, page sizes 1, 16 and 256, GQA 5, windows and softcap, non-causal, the LSE, the append
// on both paths, every dtype.
TEST_F(GpuPagedTest, GpuBaselineHasTheSameSemantics) {
  backend_ = BackendKind::kBaseline;
  for (DType dtype : {DType::kFloat16, DType::kBFloat16, DType::kFloat32}) {
    for (int64_t page_size : {1, 16, 256}) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " page_size " + std::to_string(page_size));
      PagedCase c;
      c.kv_lens = {1, 37, 131, 2, 1000, 64};
      c.q_lens = {1, 1, 17, 0, 3, 64};
      c.heads = 10;
      c.kv_heads = 2;
      c.head_dim = 64;
      c.page_size = page_size;
      Check(c, dtype, 90 + page_size);
    }
  }
  CheckWindows(128, 95);
  const PagedCase c = AppendCase();
  Check(c, DType::kFloat16, 96);                           // caches in host memory
  Check(c, DType::kBFloat16, 97, /*device_caches=*/true);  // appended in GPU memory
}

}  // namespace
}  // namespace an1
