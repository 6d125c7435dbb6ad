// The decode attention kernel's host side: coverage, the split of a problem on a device, the
// workspace it needs, and one launcher per compiled instantiation. As for sm80, the
// instantiations are listed once, in kernels/CMakeLists.txt, which generates their translation
// units and instances.inc (one AN1_DECODE_INSTANCE(element, head_dim, name) line each).
#pragma once

#include <cuda.h>  // CUtensorMap (the type only)
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/attention/attention.h"
#include "kernels/attention/decode/tiles.h"
#include "kernels/attention/sm90/launch.h"

namespace an1::kernels::attention::decode {

// Whether the paged kernel loads K/V by TMA (a box per page, or per kBlockN slots of a larger
// one) for pages of 2^page_shift slots: from 16 slots up; smaller pages are gathered row by row.
constexpr bool PagedByTma(int page_shift) { return page_shift >= 4; }

// The paged source of the decode kernel (paged.h): a ragged batch over a paged KV cache. All
// device pointers; the index tensors were checked on the host (every entry in range).
struct PagedArgs {
  const int32_t* page_table = nullptr;          // (batch, max_pages_per_seq)
  const int32_t* cu_seqlens_q = nullptr;        // (batch + 1)
  const int32_t* kv_lens = nullptr;             // (batch), after the append
  const int4* work = nullptr;                   // per block: {sequence, kv head, row block, split}
  const int32_t* sequence_of_row = nullptr;     // (total_q)
  const int32_t* splits_of_sequence = nullptr;  // (batch): decode splits, 0 for none
  const int4* prefill_work = nullptr;  // per sm80 prefill block: {sequence, head, query block, 0}
  int64_t prefill_blocks = 0;
  const void* k_new = nullptr;  // (total_q, kv_heads, head_dim) or null
  const void* v_new = nullptr;
  void* k_cache = nullptr;  // the caches again, writable, for the append
  void* v_cache = nullptr;
  int64_t total_q = 0;
  int max_pages_per_seq = 0;
  int page_shift = 0;  // log2(page_size)
  int window_left = -1;
  int window_right = -1;
  float softcap = 0;        // 0: off
  float softcap_scale = 0;  // |scale| / softcap
  int max_splits = 1;       // partial slots per (row, head) in the workspace
};

// What the kernels receive: the caller's parameters and what the launcher derives from them.
// For the paged source, params.k and params.v are the caches ((num_pages, page_size, kv_heads,
// head_dim)), params.q and params.o (total_q, heads, head_dim), params.batch the sequences and
// params.q_len / kv_len unused.
struct KernelArgs {
  // With Tiles::kTma, TMA maps of k and v (common/tensor_map.h), boxes of 64 columns x kBlockN
  // keys; paged by TMA, maps of the caches as (head_dim, kv_heads, slots), boxes of 64 columns x
  // 1 head x min(page_size, kBlockN) slots. Tensor maps must sit in parameter space, 64-byte
  // aligned: the kernel takes KernelArgs by value as a __grid_constant__.
  CUtensorMap k_map;
  CUtensorMap v_map;
  AttentionParams params;
  float scale_log2 = 0;  // params.scale * log2(e)
  int64_t row_blocks = 1;
  int splits = 1;
  int64_t tiles_per_split = 1;
  // With splits > 1, in the workspace: per (row of o, split) the split's scaled row max (log2
  // domain), its sum of exp2(scaled score - max), and its normalised fp32 output (head_dim).
  float* partial_max = nullptr;
  float* partial_sum = nullptr;
  float* partial_o = nullptr;
  PagedArgs paged;
};

// Floats of the partial max and sum arrays together (each half of it), rounded up so that each
// starts, and the partial outputs after them start, on a 256-byte boundary.
constexpr int64_t PartialStatsFloats(int64_t rows, int splits) {
  return 2 * ((rows * splits + 63) / 64 * 64);
}

#define AN1_DECODE_INSTANCE(ELEMENT, HEAD_DIM, NAME)                                            \
  KernelStatus Launch##NAME(const AttentionParams& params, const Split& split, void* workspace, \
                            cudaStream_t stream);                                               \
  KernelStatus LaunchPaged##NAME(const KernelArgs& args, int64_t blocks, bool append,           \
                                 const sm90::KernelArgs* prefill_sm90, cudaStream_t stream);
#include "kernels/attention/decode/instances.inc"
#undef AN1_DECODE_INSTANCE

// Empty when the decode kernel runs `params` on `device`; otherwise why not.
std::string Supported(const cudaDeviceProp& device, const AttentionParams& params);

// How `params` is cut into blocks on `device` (tiles.h, ChooseSplit).
Split SplitFor(const cudaDeviceProp& device, const AttentionParams& params);

// Workspace bytes for `split`'s partial results (0 with one split).
std::size_t WorkspaceBytes(const Split& split, const AttentionParams& params);

// Launches the decode kernel (and, with several splits, the combine kernel) on `stream`;
// `workspace` holds WorkspaceBytes(split, params) bytes.
KernelStatus Run(const Split& split, const AttentionParams& params, void* workspace,
                 cudaStream_t stream);

}  // namespace an1::kernels::attention::decode
