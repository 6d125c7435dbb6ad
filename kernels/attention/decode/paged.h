// Paged attention on the GPU: the decode kernel's paged source (decode/kernel.cuh, kPaged) over a
// ragged batch whose K/V live in a paged cache, with the step's new rows appended first. The
// layout and conventions are the PagedAttention RPC's (proto/an1/v1/an1.proto), which follow
// vLLM's FlashAttention backend: q (total_q, heads, head_dim) packed by sequence with
// cu_seqlens_q; caches (num_pages, page_size, kv_heads, head_dim); page_table int32 (batch,
// max_pages_per_seq); kv_lens int32 (batch) after the append; bottom-right causal per sequence,
// sliding window (window_left, window_right; -1 unbounded), softcap (0 off), natural-log LSE.
//
// Two launches for the whole batch (after the append): the decode kernel, a block taking 16
// packed rows (query heads of one KV group x queries) of one sequence against a split of its
// keys, for decode rows and for chunks with a window or softcap; and, for causal prefill chunks
// of more than kPrefillMinQueries queries, a prefill kernel's paged source (128 query rows of one
// head per work tile, K/V read through the page table): on Hopper with pages of 16 slots or more
// the sm90 kernel (TMA a page at a time, wgmma), else the sm80 kernel (cp.async gathers); it reads
// each K/V tile once per 128 rows where 16-row blocks read it eight times as often. The
// host plans the blocks from the sequences' lengths (which it has checked: every page-table
// entry a sequence uses is in range), so the kernel never reads outside a tensor and never reads
// a cache slot at or past a sequence's kv_len.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/element_type.h"
#include "kernels/kernel_status.h"

namespace an1::kernels::attention::decode {

// Sequences with more queries than this (causal, no window or softcap) run in the prefill kernel.
inline constexpr int64_t kPrefillMinQueries = 16;
inline constexpr int64_t kPrefillBlockRows = 128;  // sm80::Tiles<true>::kBlockM, sm90 kBlockM

struct PagedProblem {
  ElementType dtype = ElementType::kF16;  // of q, the caches, k_new, v_new and o
  int64_t batch = 0;
  int64_t total_q = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;  // heads % kv_heads == 0
  int64_t head_dim = 0;
  int64_t num_pages = 0;
  int64_t page_size = 1;  // a power of two
  int64_t max_pages_per_seq = 0;
  bool causal = true;
  float scale = 1.0f;  // resolved (any sign; 0 allowed)
  int window_left = -1;
  int window_right = -1;
  float softcap = 0;    // > 0: scores become softcap x tanh(score / softcap)
  bool append = false;  // k_new and v_new are written into the caches first
};

// One sequence, as the host checked it: its rows of q and its KV length after the append.
struct PagedSpan {
  int64_t q_start = 0;
  int64_t q_len = 0;  // 0: the sequence is skipped (no output rows)
  int64_t kv_len = 0;
};

struct PagedPlan {
  std::string label;  // "an1.paged" or "an1.paged.splitkv/N": the kernel that runs
  // To be uploaded (int32, 16-byte aligned): 4 ints per decode block {sequence, kv head, row
  // block, split}; the sequence of each of the total_q rows; the decode splits of each sequence
  // (0: none, or a prefill chunk); then, from a multiple of 4, 4 ints per prefill block
  // {sequence, head, query block, 0}.
  std::vector<int32_t> metadata;
  int64_t blocks = 0;  // decode blocks
  int64_t prefill_blocks = 0;
  int64_t sequence_of_row_offset = 0;  // into metadata, in ints
  int64_t splits_of_sequence_offset = 0;
  int64_t prefill_work_offset = 0;
  int64_t tiles_per_split = 1;
  int max_splits = 1;  // the most splits of any sequence
  // The prefill chunks' kernel: sm90 (Hopper, pages of 16 slots or more), else sm80; the sm90
  // kernel's work queue sits at this offset of the workspace.
  bool prefill_sm90 = false;
  std::size_t prefill_queue_offset = 0;
  std::size_t workspace_bytes = 0;
};

// Device pointers of one call. The caches must be writable when the problem appends.
struct PagedBuffers {
  const void* q = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  const void* k_new = nullptr;
  const void* v_new = nullptr;
  const int32_t* page_table = nullptr;
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* kv_lens = nullptr;
  const int32_t* metadata = nullptr;  // PagedPlan::metadata, uploaded
  void* o = nullptr;
  float* lse = nullptr;       // (total_q, heads) or null
  void* workspace = nullptr;  // PagedPlan::workspace_bytes
};

// Empty when the paged kernel runs `problem` on `device`; otherwise why not.
std::string PagedSupported(const cudaDeviceProp& device, const PagedProblem& problem);

// The blocks, split and workspace of `problem` with `sequences` (batch of them) on `device`.
PagedPlan PlanPaged(const cudaDeviceProp& device, const PagedProblem& problem,
                    std::span<const PagedSpan> sequences);

// Appends (with problem.append), then attends, on `stream`. kUnsupported for pointers that are
// not 16-byte aligned or a problem outside PagedSupported.
KernelStatus RunPaged(const PagedProblem& problem, const PagedPlan& plan,
                      const PagedBuffers& buffers, cudaStream_t stream);

}  // namespace an1::kernels::attention::decode
