// Every refusal of paged attention's validation (paged_validation.h): shapes and dtypes when the
// request arrives, the index tensors' values before it runs; each INVALID_ARGUMENT names the field
// and index.
#include "engine/paged_validation.h"

#include <gtest/gtest.h>

#include <functional>

#include "tests/paged_case.h"

namespace an1 {
namespace {

using testing::PagedCase;
using testing::PagedData;

template <typename T>
std::span<const std::byte> Bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

struct Fixture {
  PagedCase c;
  PagedData d;
  std::vector<std::byte> k_cache, v_cache;
  PagedAttentionInputs in;

  explicit Fixture(bool append = false) {
    c.kv_lens = {20, 5, 33};
    c.q_lens = {4, 1, 0};
    c.page_size = 8;
    c.append = append;
    std::mt19937_64 rng(1);
    d = testing::MakePagedData(c, DType::kFloat16, rng);
    k_cache = d.k_cache.bytes;
    v_cache = d.v_cache.bytes;
    const std::vector<int64_t> cache{d.num_pages, c.page_size, c.kv_heads, c.head_dim};
    in.q = {DType::kFloat16, {d.total_q, c.heads, c.head_dim}, d.q.bytes};
    in.cu_seqlens_q = {DType::kInt32, {4}, Bytes(d.cu_seqlens)};
    in.k_cache = {DType::kFloat16, cache, k_cache};
    in.v_cache = {DType::kFloat16, cache, v_cache};
    in.page_table = {DType::kInt32, {3, d.max_pages}, Bytes(d.page_table)};
    in.kv_lens = {DType::kInt32, {3}, Bytes(d.kv_lens)};
    if (append) {
      in.k_new = TensorView{DType::kFloat16, {d.total_q, c.kv_heads, c.head_dim}, d.k_new.bytes};
      in.v_new = TensorView{DType::kFloat16, {d.total_q, c.kv_heads, c.head_dim}, d.v_new.bytes};
      in.k_cache_writable = k_cache;
      in.v_cache_writable = v_cache;
    }
  }
  // Both steps; the first error.
  Status Validate() {
    in.cu_seqlens_q.data = Bytes(d.cu_seqlens);
    in.page_table.data = Bytes(d.page_table);
    in.kv_lens.data = Bytes(d.kv_lens);
    StatusOr<ValidatedPagedAttention> problem = ValidatePagedAttention(in, Limits{});
    if (!problem.ok()) return problem.status();
    return ValidatePagedIndices(*problem, in).status();
  }
};

void ExpectRefused(const std::function<void(Fixture&)>& corrupt, const std::string& words,
                   bool append = false) {
  Fixture f(append);
  corrupt(f);
  const Status status = f.Validate();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << words;
  EXPECT_NE(status.message().find(words), std::string::npos) << status.message();
}

TEST(PagedValidationTest, AcceptsTheFixture) {
  Fixture plain;
  EXPECT_TRUE(plain.Validate().ok()) << plain.Validate().ToString();
  Fixture append(true);
  EXPECT_TRUE(append.Validate().ok()) << append.Validate().ToString();
}

TEST(PagedValidationTest, RefusesIndexValues) {
  ExpectRefused([](Fixture& f) { f.d.page_table[1 * f.d.max_pages + 0] = f.d.num_pages; },
                "page_table[1][0] = ");
  ExpectRefused([](Fixture& f) { f.d.page_table[2 * f.d.max_pages + 4] = -1; },
                "page_table[2][4] = -1 is outside [0, ");
  ExpectRefused([](Fixture& f) { f.d.kv_lens[2] = -1; }, "kv_lens[2] = -1 is outside");
  ExpectRefused([](Fixture& f) { f.d.kv_lens[0] = int32_t(f.d.max_pages * 8 + 1); },
                "kv_lens[0] = ");
  ExpectRefused([](Fixture& f) { f.d.cu_seqlens[0] = 1; }, "cu_seqlens_q[0] = 1");
  ExpectRefused([](Fixture& f) { f.d.cu_seqlens[2] = 3; }, "cu_seqlens_q[2] = 3 is below");
  ExpectRefused([](Fixture& f) { f.d.cu_seqlens[2] = f.d.cu_seqlens[3] = 4; },
                "cu_seqlens_q[3] = 4 must equal total_q = 5");
  ExpectRefused([](Fixture& f) { f.d.cu_seqlens[1] = 1000; }, "is beyond total_q");
  ExpectRefused([](Fixture& f) { f.d.kv_lens[1] = 0; }, "q_len must not exceed kv_len");
  // Two sequences appending into one slot (sequence 1 shares sequence 0's page of that slot).
  ExpectRefused(
      [](Fixture& f) {
        f.d.kv_lens[1] = 20;  // its last position, 19, is on page 2, as sequence 0's
        f.d.page_table[1 * f.d.max_pages + 2] = f.d.page_table[2];
        f.d.page_table[1 * f.d.max_pages + 1] = f.d.page_table[1];
        f.d.page_table[1 * f.d.max_pages + 0] = f.d.page_table[0];
      },
      "both append into page", true);
}

TEST(PagedValidationTest, RefusesShapesAndDTypes) {
  ExpectRefused([](Fixture& f) { f.in.page_table.dtype = DType::kFloat32; },
                "page_table is fp32; index tensors must be int32");
  ExpectRefused([](Fixture& f) { f.in.q.dtype = DType::kInt32; }, "q is int32");
  ExpectRefused([](Fixture& f) { f.in.k_cache.dtype = DType::kBFloat16; }, "k_cache is bf16");
  ExpectRefused([](Fixture& f) { f.in.q.shape = {f.d.total_q, 4, 16, 2}; }, "q must have rank 3");
  ExpectRefused([](Fixture& f) { f.in.q.shape[1] = 3; }, "bytes of data");
  ExpectRefused(
      [](Fixture& f) {
        f.in.q.shape = {f.d.total_q, 3, 32};
        f.in.q.data = f.in.q.data.first(f.d.total_q * 3 * 32 * 2);
      },
      "must be a multiple of the caches' kv_heads");
  ExpectRefused(
      [](Fixture& f) {
        f.in.cu_seqlens_q.shape = {3};
        f.d.cu_seqlens.pop_back();
      },
      "cu_seqlens_q length");
  ExpectRefused([](Fixture& f) { f.in.v_cache.shape[0] -= 1; }, "v_cache has");
  ExpectRefused(
      [](Fixture& f) {
        f.in.k_cache.shape = {f.d.num_pages * 8 / 3 * 0 + 1, 3, 2, 32};  // page_size 3
        f.in.k_cache.data = f.in.k_cache.data.first(3 * 2 * 32 * 2);
        f.in.v_cache.shape = f.in.k_cache.shape;
        f.in.v_cache.data = f.in.v_cache.data.first(3 * 2 * 32 * 2);
      },
      "page_size (k_cache.shape[1]) is 3");
  ExpectRefused([](Fixture& f) { f.in.window_left = -2; }, "window_left is -2");
  ExpectRefused([](Fixture& f) { f.in.softcap = -1; }, "softcap");
  ExpectRefused([](Fixture& f) { f.in.scale = INFINITY; }, "scale must be a finite");
  ExpectRefused([](Fixture& f) { f.in.page_table.device = 0; }, "page_table is in GPU memory");
  ExpectRefused([](Fixture& f) { f.in.return_lse = true; }, "the lse buffer has 0 elements");
}

TEST(PagedValidationTest, RefusesBadAppends) {
  ExpectRefused([](Fixture& f) { f.in.v_new.reset(); }, "k_new is given without v_new", true);
  ExpectRefused([](Fixture& f) { f.in.k_new->shape[1] = 1; }, "k_new", true);
  ExpectRefused(
      [](Fixture& f) {
        f.in.k_cache_writable = {};
        f.in.v_cache_writable = {};
      },
      "must be in a shared memory region", true);
}

TEST(PagedValidationTest, LseElements) {
  Fixture f;
  EXPECT_EQ(PagedLseElements(f.in.q), static_cast<std::size_t>(f.d.total_q * f.c.heads));
  f.in.q.shape = {1, 2};
  EXPECT_EQ(PagedLseElements(f.in.q), 0u);
}

}  // namespace
}  // namespace an1
