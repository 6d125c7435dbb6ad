// The sm90 (Hopper) attention kernel's host side: coverage, and one launcher per compiled
// instantiation. The instantiations are listed once, in kernels/CMakeLists.txt, which generates
// their translation units and instances.inc (AN1_SM90_INSTANCE(element, head_dim, causal, name)
// lines), so the list, the dispatch and the build cannot drift apart.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/attention/attention.h"
#include "kernels/attention/common/paged_rows.h"

namespace an1::kernels::attention::sm90 {

// What the kernel receives: TMA tensor maps of q, k, v and o (3-D: head_dim, sequence,
// batch x heads) and the scalars of the problem. The paged source (kPaged: prefill chunks of a
// ragged batch, `paged`) reads q as (head_dim, heads, total_q) and the caches as (head_dim,
// kv_heads, slots) in boxes of one page (at most kBlockN slots), and stores o from registers,
// only the rows of each work tile's own sequence; q_len, kv_len and batch are then unused. Tensor
// maps must sit in parameter space, 64-byte aligned (CUtensorMap carries the alignment): passed by
// value as a __grid_constant__.
struct KernelArgs {
  CUtensorMap q_map;  // box: 64 columns x kBlockM rows
  CUtensorMap k_map;  // box: 64 columns x BlockN rows (tiles.h)
  CUtensorMap v_map;  // box: 64 columns x BlockN rows
  CUtensorMap o_map;  // box: 64 columns x 64 rows (a consumer warpgroup's); unused by wide tiles
  float* lse = nullptr;
  unsigned long long* tile_counter = nullptr;  // the work queue, in the workspace
  float scale_log2 = 0;                        // scale * log2(e)
  int q_len = 0;
  int kv_len = 0;
  int heads = 0;
  int group = 1;  // heads / kv_heads
  int batch = 0;
  int kv_heads = 0;
  int blocks_m = 0;             // query blocks per (batch, head)
  int64_t work_tiles = 0;       // blocks_m x batch x heads
  int64_t heads_per_group = 1;  // block scheduling (common/scheduling.cuh)
  PagedRows paged;              // kPaged: the work tiles and index tensors
  void* o = nullptr;            // stored from registers: paged (total_q, H, D), wide (B, H, S, D)
};

// Device memory Run needs: the work queue's counter (zeroed by Run on its stream).
inline constexpr std::size_t kWorkspaceBytes = 16;

#define AN1_SM90_INSTANCE(ELEMENT, HEAD_DIM, CAUSAL, NAME) \
  KernelStatus Launch##NAME(const AttentionParams& params, void* workspace, cudaStream_t stream);
#include "kernels/attention/sm90/instances.inc"
#undef AN1_SM90_INSTANCE

// Empty when the sm90 kernel runs `params` on `device`; otherwise why not.
std::string Supported(const cudaDeviceProp& device, const AttentionParams& params);

// Launches the instantiation for params' dtype, head_dim and mask with `workspace` (at least
// kWorkspaceBytes of device memory); kUnsupported when there is none. Pointers must be 16-byte
// aligned (TMA): the family's Run checks.
KernelStatus Run(const AttentionParams& params, void* workspace, cudaStream_t stream);

// Fills the kernel's tensor maps for `params`, K and V in tiles of `block_n` rows (tensor_map.cc):
// kInternal when the driver has no cuTensorMapEncodeTiled or refuses a map.
KernelStatus EncodeTensorMaps(const AttentionParams& params, int block_n, KernelArgs* args);

// The paged source's maps (tensor_map.cc): q (total_q, heads, head_dim) at `q`, the caches
// (slots = num_pages x page_size, kv_heads, head_dim) at `k_cache` and `v_cache`, read a page (at
// most kBlockN slots) at a time. Same errors.
KernelStatus EncodePagedTensorMaps(ElementType dtype, const void* q, const void* k_cache,
                                   const void* v_cache, int64_t total_q, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim, int64_t slots,
                                   int64_t page_size, KernelArgs* args);

// Whether the paged source takes pages of `page_size` slots: 16 or more, so that a tile takes at
// most 8 boxes a tensor (the 128-byte swizzle alone would allow 8-slot pages: 1024-byte boxes).
constexpr bool PagedPageSizeSupported(int64_t page_size) { return page_size >= 16; }

}  // namespace an1::kernels::attention::sm90
