// Paged attention over a ragged batch (the PagedAttention RPC, proto/an1/v1/an1.proto): its
// inputs, and their validation in two steps.
//
// ValidatePagedAttention checks shapes, dtypes, byte counts, options and limits; it reads no
// tensor element, so it runs when the request arrives (a region's bytes may not be read yet).
// ValidatePagedIndices checks the values of the index tensors (cu_seqlens_q, kv_lens,
// page_table) and runs just before the backend, once every input is in memory; a backend gets only
// requests both accepted, so it never reads or writes outside a tensor. Pure functions,
// thread-safe; errors are INVALID_ARGUMENT naming the field and index, or RESOURCE_EXHAUSTED for a
// tensor above the size limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/options.h"
#include "engine/status.h"
#include "engine/tensor.h"

namespace an1 {

// A byte range of a cache tensor (k_cache and v_cache alike: they share one shape).
struct CacheRange {
  std::size_t offset = 0;
  std::size_t size = 0;
};

struct PagedAttentionInputs {
  TensorView q;                            // (total_q, H, D), rows packed by sequence
  TensorView cu_seqlens_q;                 // int32 (B + 1)
  TensorView k_cache;                      // (num_pages, page_size, Hkv, D)
  TensorView v_cache;                      // (num_pages, page_size, Hkv, D)
  TensorView page_table;                   // int32 (B, max_pages_per_seq)
  TensorView kv_lens;                      // int32 (B), KV lengths after the append
  std::optional<TensorView> k_new, v_new;  // (total_q, Hkv, D), both or neither
  // With k_new: the caches' own bytes, writable (the same memory as k_cache.data and
  // v_cache.data), where the append goes. Empty when the caller's cache cannot be written (an
  // inline tensor): k_new is then refused.
  std::span<std::byte> k_cache_writable, v_cache_writable;
  // With k_new, when not null: the backend records here the byte ranges of the caches it wrote
  // (the same ranges in both), for a caller whose cache is a copy to write them back.
  std::vector<CacheRange>* appended = nullptr;
  bool causal = true;
  std::optional<float> scale;  // nullopt: 1/sqrt(D)
  int window_left = -1;        // -1: unbounded
  int window_right = -1;       // -1: unbounded
  float softcap = 0;           // 0: off
  // Also compute each (row, head)'s log-sum-exp into `lse`: host memory of exactly total_q * H
  // floats, (total_q, H) row-major, owned by the caller.
  bool return_lse = false;
  std::span<float> lse;
};

struct PagedAttentionDims {
  int64_t batch = 0;              // B
  int64_t total_q = 0;            // rows of q
  int64_t heads = 0;              // H
  int64_t kv_heads = 0;           // Hkv; H % Hkv == 0
  int64_t head_dim = 0;           // D
  int64_t num_pages = 0;          // pages in each cache
  int64_t page_size = 0;          // power of two, 1..256
  int64_t max_pages_per_seq = 0;  // columns of page_table
};

struct ValidatedPagedAttention {
  PagedAttentionDims dims;
  DType dtype = DType::kFloat32;  // of q, the caches, k_new, v_new and the output
  float scale = 1.0f;             // resolved
  bool append = false;            // k_new and v_new given
  TensorSpec output;              // (total_q, H, D)
  std::optional<TensorSpec> lse;  // fp32 (total_q, H) with return_lse
};

// One sequence of the batch, from the index tensors.
struct PagedSequence {
  int64_t q_start = 0;  // its first row in q (cu_seqlens_q[b])
  int64_t q_len = 0;    // rows in q; 0: skipped
  int64_t kv_len = 0;   // keys after the append; q_len <= kv_len
};

// Maximum page_size; page sizes are powers of two from 1 to this.
inline constexpr int64_t kMaxPageSize = 256;

StatusOr<ValidatedPagedAttention> ValidatePagedAttention(const PagedAttentionInputs& inputs,
                                                         const Limits& limits);

// The sequences of an accepted request, after checking the index tensors' values (host memory):
// cu_seqlens_q starts at 0, never decreases and ends at total_q; 0 <= kv_lens[b] <=
// max_pages_per_seq * page_size; q_len_b <= kv_len_b; the page-table entries a sequence uses
// (the first ceil(kv_len_b / page_size) of its row) lie in [0, num_pages); and with an append, no
// two appended rows go to the same cache slot.
StatusOr<std::vector<PagedSequence>> ValidatePagedIndices(const ValidatedPagedAttention& problem,
                                                          const PagedAttentionInputs& inputs);

// Element offset in a cache of (slot `position` of sequence `b`, kv head 0), for accepted indices:
// ((page_table[b][position / page_size] * page_size + position % page_size) * Hkv) * D.
int64_t PagedCacheOffset(const ValidatedPagedAttention& problem, const TensorView& page_table,
                         int64_t b, int64_t position);

// total_q * H for a request whose q is `q`: the floats its LSE buffer needs, for sizing that
// buffer before the request is validated; 0 when q cannot be valid (not rank 3, a dimension below
// 1, fewer bytes than 2 per element).
std::size_t PagedLseElements(const TensorView& q);

}  // namespace an1
