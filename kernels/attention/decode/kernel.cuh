// The decode attention kernel template (flash-decoding): one to sixteen queries per sequence
// against a long KV cache. Included only by the generated per-instantiation translation units
// (kernels/CMakeLists.txt), one per (dtype, head_dim); the family's interface is
// kernels/attention/attention.h and the tile choices and split rule are in decode/tiles.h.
//
// Block (batch, kv head, split, row block): the packed rows of one KV head — query heads
// kvh*g .. kvh*g+g-1, each with its Sq queries, which are consecutive rows of q and o — against
// the keys of its split. K/V tiles stream through a kStages-deep ring (by TMA, or by cp.async
// with Tiles::kTma off); every warp takes
// a 16-key slice of each tile (mma.sync m16n8k16 for Q K^T and P V, the online softmax in fp32
// registers). At the end the warps' partial results merge in shared memory; with one split the
// block writes o (and the LSE), otherwise an fp32 partial output and its LSE per split, which
// the combine kernel below merges.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>

#include "kernels/attention/common/causal.h"
#include "kernels/attention/common/dependent_launch.cuh"
#include "kernels/attention/common/launch_setup.h"
#include "kernels/attention/common/mma_sync.cuh"
#include "kernels/attention/common/online_softmax.cuh"
#include "kernels/attention/common/tensor_map.h"
#include "kernels/attention/common/tma.cuh"
#include "kernels/attention/decode/launch.h"
#include "kernels/attention/decode/tiles.h"
#include "kernels/attention/sm80/kernel.cuh"
#include "kernels/attention/sm90/kernel.cuh"
#include "kernels/cuda_check.h"

namespace an1::kernels::attention::decode {

// kPaged: the block's rows and keys come from a ragged batch over a paged cache (args.paged)
// instead of dense (B, H, S, D) tensors, with sliding windows and softcap besides; K/V rows are
// gathered through the page table by TMA, a box per page (or per 64 slots of one), with
// kPagedTma (pages of 16 slots or more), else by cp.async, a row at a time.
template <typename T, int kDim, bool kPaged, bool kPagedTma = false>
__global__ void __launch_bounds__(Tiles::kThreads)
    DecodeKernel(const __grid_constant__ KernelArgs args) {
  constexpr int kM = Tiles::kRows, kN = Tiles::kBlockN, kStride = kDim + Tiles::kPad;
  constexpr int kStages = Tiles::kStages;
  constexpr int kDTiles = kDim / 8;   // n8 tiles of the output
  constexpr int kKSteps = kDim / 16;  // k16 steps of Q K^T
  constexpr uint32_t kBytes = sizeof(T);
  constexpr bool kTma = kPaged ? kPagedTma : Tiles::kTma;
  // TMA tiles: a K or V tile is kDim / 64 boxes of kN rows x 128 bytes, swizzled.
  constexpr uint32_t kTileBytes = TmaTileBytes(kDim, kBytes);
  constexpr uint32_t kBoxBytes = kN * 128;
  constexpr int kHalves = kDim / 64;  // 64-column (128-byte) pieces of a row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // TMA's 128-byte swizzle is tied to address bits 7-9: its tiles start on a 1024-byte boundary.
  unsigned char* smem =
      kTma ? smem_raw + ((1024 - (SmemAddress(smem_raw) & 1023)) & 1023) : smem_raw;
  T* q_smem = reinterpret_cast<T*>(kTma ? smem + 2 * kStages * kTileBytes : smem);
  uint64_t* full = reinterpret_cast<uint64_t*>(reinterpret_cast<unsigned char*>(q_smem) +
                                               kM * kStride * kBytes);  // TMA: per stage
  auto kv = [&](int stage, int which) {  // stage's K (which 0) or V (which 1) tile
    return kTma ? reinterpret_cast<T*>(smem + (stage * 2 + which) * kTileBytes)
                : q_smem + (kM + (stage * 2 + which) * kN) * kStride;
  };

  AllowDependentLaunch();  // the combine kernel may be placed now; it waits for our writes
  const AttentionParams& p = args.params;
  const PagedArgs& pa = args.paged;
  const int group_size = static_cast<int>(p.heads / p.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;

  // The block's (sequence, KV head, split, row block). Dense: blockIdx.x = ((b * kv_heads + kvh)
  // * splits + split) * row_blocks + row_block, so the row blocks of one KV head and split run
  // side by side and share its K/V through L2. Paged: the host's work list.
  int64_t b, kvh;
  int split, row_block, q_len, kv_len;
  int64_t q_start = 0;  // paged: the sequence's first row of q
  if constexpr (kPaged) {
    const int4 w = pa.work[blockIdx.x];
    b = w.x, kvh = w.y, row_block = w.z, split = w.w;
    q_start = pa.cu_seqlens_q[b];
    q_len = static_cast<int>(pa.cu_seqlens_q[b + 1] - q_start);
    kv_len = pa.kv_lens[b];
  } else {
    int64_t index = blockIdx.x;
    row_block = static_cast<int>(index % args.row_blocks);
    index /= args.row_blocks;
    split = static_cast<int>(index % args.splits);
    const int64_t bkv = index / args.splits;  // b * kv_heads + kvh
    b = bkv / p.kv_heads, kvh = bkv % p.kv_heads;
    q_len = static_cast<int>(p.q_len), kv_len = static_cast<int>(p.kv_len);
  }
  const int64_t bkv = b * p.kv_heads + kvh;
  const int rows = group_size * q_len;  // packed rows of one KV head
  const int row0 = row_block * kM;
  const int valid_rows = min(kM, rows - row0);
  // Packed row r of this KV head: dense, query head kvh * group + r / q_len at query r % q_len,
  // which is row base + r of q, o and the LSE in (B, H, Sq) order; paged, query r / group of the
  // sequence at head kvh * group + r % group, row (q_start + r / group) * heads + ... of the
  // (total_q, heads) rows.
  const int64_t base = (b * p.heads + kvh * group_size) * p.q_len;
  auto query_of = [&](int r) { return kPaged ? r / group_size : r % q_len; };
  auto row_of = [&](int r) -> int64_t {
    if constexpr (kPaged) {
      return (q_start + r / group_size) * p.heads + kvh * group_size + r % group_size;
    } else {
      return base + r;
    }
  };
  const T* q = static_cast<const T*>(p.q) + base * kDim;  // dense
  const T* k = static_cast<const T*>(p.k) + bkv * p.kv_len * kDim;
  const T* v = static_cast<const T*>(p.v) + bkv * p.kv_len * kDim;
  const int window_left = kPaged ? pa.window_left : -1;
  const int window_right = kPaged ? pa.window_right : -1;

  // The keys the block's rows see: [max_first, min_end) by all of them, [min_first, max_end) by
  // some. Only tiles within the latter are read; those not within the former are masked per
  // element.
  int min_first = kv_len, max_first = 0, min_end = kv_len, max_end = 0;
  for (int r = row0; r < row0 + valid_rows; ++r) {
    int first, end;
    VisibleRange(query_of(r), q_len, kv_len, p.causal, window_left, window_right, &first, &end);
    if (first >= end) continue;  // sees no key
    min_first = min(min_first, first), max_first = max(max_first, first);
    min_end = min(min_end, end), max_end = max(max_end, end);
  }
  const int tiles = (kv_len + kN - 1) / kN;
  const int tile_begin = max(static_cast<int>(split * args.tiles_per_split), min_first / kN);
  const int tile_end = min(min(static_cast<int>((split + 1) * args.tiles_per_split), tiles),
                           (max_end + kN - 1) / kN);
  // How many splits this block's sequence has (dense: all the same).
  const int splits =
      kPaged ? static_cast<int>((tiles + args.tiles_per_split - 1) / args.tiles_per_split)
             : args.splits;

  // A negative scale flips the sign of Q's fragments below, so the max is taken on raw scores
  // with a positive scale; a zero scale becomes a tiny one (the same weights to fp32 precision).
  // With a softcap, scores are capped in the natural-log domain first (softcap x tanh(s x |scale|
  // / softcap)) and then only converted to log2.
  const bool capped = kPaged && pa.softcap > 0;
  const float scale = capped ? kLog2e : fmaxf(fabsf(args.scale_log2), 1e-30f);

  // cp.async: every thread copies 16-byte chunks (rows past the keys read as zeros). TMA: thread
  // 0 announces the tile's bytes on the stage's barrier and issues its boxes (keys past kv_len
  // land as zeros; the map's last-but-one dimension is this (batch, KV head)'s kv_len).
  // (Measured on an H200: one copy-engine bulk copy per K/V row, issued by one warp, ran at half
  // the cp.async speed; deeper rings and 128-key tiles did not beat three 64-key stages.)
  // K and V are read once: their L2 lines go first (an H200 read 1-2% faster with the hint).
  const uint64_t policy = EvictFirstPolicy();
  auto load_tile = [&](int stage, int tile) {
    if constexpr (kTma && kPaged) {
      // Boxes of `box_rows` slots of one page (the map's box: min(page_size, kN) slots of this
      // KV head), only those holding keys below kv_len: page-table entries past a sequence's
      // last page are never read. The rows of the tile at or past kv_len are zeroed after the
      // wait (the slots there may hold anything, NaN included).
      const int box_rows = min(1 << pa.page_shift, kN);
      const int32_t* pages = pa.page_table + b * pa.max_pages_per_seq;
      const int slot_mask = (1 << pa.page_shift) - 1;
      const int j0 = tile * kN;
      const int boxes = min(kN, kv_len - j0 + box_rows - 1) / box_rows;  // those with keys
      ArriveExpectBytes(&full[stage], boxes * box_rows * 128 * kHalves * 2);
      for (int x = 0; x < boxes; ++x) {
        const int j = j0 + x * box_rows;
        const int slot = (pages[j >> pa.page_shift] << pa.page_shift) + (j & slot_mask);
#pragma unroll
        for (int half = 0; half < kHalves; ++half) {
          const int at = (half * kBoxBytes + x * box_rows * 128) / kBytes;
          TmaLoad3d(kv(stage, 0) + at, &args.k_map, &full[stage], half * 64, static_cast<int>(kvh),
                    slot, policy);
          TmaLoad3d(kv(stage, 1) + at, &args.v_map, &full[stage], half * 64, static_cast<int>(kvh),
                    slot, policy);
        }
      }
    } else if constexpr (kTma) {
      ArriveExpectBytes(&full[stage], 2 * kTileBytes);
#pragma unroll
      for (int box = 0; box < kHalves; ++box) {
        TmaLoad3d(kv(stage, 0) + box * kBoxBytes / kBytes, &args.k_map, &full[stage], box * 64,
                  tile * kN, static_cast<int>(bkv), policy);
        TmaLoad3d(kv(stage, 1) + box * kBoxBytes / kBytes, &args.v_map, &full[stage], box * 64,
                  tile * kN, static_cast<int>(bkv), policy);
      }
    } else if constexpr (kPaged) {  // key j: slot page_table[b][j / page_size] x page_size + ...
      const int32_t* pages = pa.page_table + b * pa.max_pages_per_seq;
      const int64_t slot_mask = (int64_t{1} << pa.page_shift) - 1;
      const T* k_cache = static_cast<const T*>(p.k);
      const T* v_cache = static_cast<const T*>(p.v);
      auto slot_row = [&](const T* cache) {
        return [=](int r) -> const T* {
          const int j = tile * kN + r;
          if (j >= kv_len) return nullptr;  // never read: a slot past kv_len may hold anything
          const int64_t slot =
              (int64_t{pages[j >> pa.page_shift]} << pa.page_shift) + (j & slot_mask);
          return cache + (slot * p.kv_heads + kvh) * kDim;
        };
      };
      LoadRows<kN, kDim, Tiles::kThreads, Tiles::kPad>(kv(stage, 0), slot_row(k_cache), k_cache);
      LoadRows<kN, kDim, Tiles::kThreads, Tiles::kPad>(kv(stage, 1), slot_row(v_cache), v_cache);
    } else {
      LoadTile<kN, kDim, Tiles::kThreads, Tiles::kPad>(kv(stage, 0), k, tile * kN, kv_len);
      LoadTile<kN, kDim, Tiles::kThreads, Tiles::kPad>(kv(stage, 1), v, tile * kN, kv_len);
    }
  };
  auto load_q = [&] {
    if constexpr (kPaged) {
      const T* q_all = static_cast<const T*>(p.q);
      LoadRows<kM, kDim, Tiles::kThreads, Tiles::kPad>(
          q_smem,
          [&](int r) -> const T* {
            return row0 + r < rows ? q_all + row_of(row0 + r) * kDim : nullptr;
          },
          q_all);
    } else {
      LoadTile<kM, kDim, Tiles::kThreads, Tiles::kPad>(q_smem, q, row0, rows);
    }
  };
  if constexpr (kTma) {
    // The ring: tiles tile_begin .. tile_begin + kStages - 2 in flight before the loop, then Q
    // by cp.async, which every thread has waited for at the barrier below.
    if (threadIdx.x == 0) {
      for (int s = 0; s < kStages; ++s) BarrierInit(&full[s], 1);
      FenceBarrierInit();
      for (int s = 0; s < kStages - 1; ++s) {
        if (tile_begin + s < tile_end) load_tile(s, tile_begin + s);
      }
    }
    load_q();
    CopyAsyncCommit();
    CopyAsyncWait<0>();
    __syncthreads();
  } else {
    load_q();
    // The ring: tiles tile_begin .. tile_begin + kStages - 2 in flight before the loop. Every
    // stage commits a group, empty or not, so that "wait until kStages - 2 are pending" always
    // means "this tile has landed".
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      const int tile = tile_begin + s;
      if (tile < tile_end) load_tile(s, tile);
      CopyAsyncCommit();
    }
  }

  const int warp_key0 = warp * Tiles::kKeysPerWarp;
  // ldmatrix addresses of this lane's rows: K for Q K^T (keys lane % 8 + (lane / 16) * 8 of the
  // warp's slice, 16-byte chunk (lane / 8) % 2 of each k16 step), V for P V through .trans (keys
  // lane % 8 + ((lane / 8) % 2) * 8, chunk lane / 16 of each pair of n8 tiles).
  const int k_row = warp_key0 + lane % 8 + (lane / 16) * 8, k_chunk = (lane / 8) % 2;
  const int v_row = warp_key0 + lane % 8 + ((lane / 8) % 2) * 8, v_chunk = lane / 16;
  constexpr uint32_t kStageBytes = kTma ? 2 * kTileBytes : 2 * kN * kStride * kBytes;
  // Padded (cp.async): step j's chunk is j * 2 + chunk. Swizzled (TMA): within each 64-column box
  // (box j / 4) 16-byte chunk c of row r sits at chunk c ^ (r % 8); r % 8 is lane % 8 for both
  // operands, so the chunk of step j is (chunk ^ (lane & 1)) | ((2 * (j % 4)) ^ (lane & 6)).
  auto frag_offset = [&](int row, int chunk, int j) -> uint32_t {
    if constexpr (kTma) {
      const uint32_t c = (chunk ^ (lane & 1)) | ((2 * (j % 4)) ^ (lane & 6));
      return (j / 4) * kBoxBytes + row * 128 + c * 16;
    } else {
      return (row * kStride + (2 * j + chunk) * 8) * kBytes;
    }
  };
  const uint32_t k_frag0 = SmemAddress(kv(0, 0)), v_frag0 = SmemAddress(kv(0, 1));

  // This thread's rows of the tile: `group` (lo) and `group + 8` (hi), and the keys each sees.
  int first[2], end[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = row0 + group + half * 8;
    first[half] = 0, end[half] = kv_len;
    if (r < rows) {
      VisibleRange(query_of(r), q_len, kv_len, p.causal, window_left, window_right, &first[half],
                   &end[half]);
    }
  }

  uint32_t qf[kKSteps][4];
  float out[kDTiles][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};

  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int stage = (tile - tile_begin) % kStages;
    const int next = tile + kStages - 1;
    if constexpr (kTma) {
      Wait(&full[stage], ((tile - tile_begin) / kStages) & 1);
      if (kPaged && tile * kN + kN > kv_len) {
        // The last tile's V rows at or past kv_len: zeros (their P is 0, but 0 x NaN is NaN).
        // K there is masked. Generic writes, ordered before the next TMA into this stage.
        unsigned char* v_tile = reinterpret_cast<unsigned char*>(kv(stage, 1));
        for (int c = threadIdx.x; c < kN * kHalves * 8; c += Tiles::kThreads) {
          const int half = c / (kN * 8), row = (c / 8) % kN;
          if (tile * kN + row >= kv_len) {
            *reinterpret_cast<uint4*>(v_tile + half * kBoxBytes + row * 128 + (c % 8) * 16) =
                make_uint4(0, 0, 0, 0);
          }
        }
        FenceAsyncShared();
      }
      __syncthreads();  // everyone is done with the previous tile: its stage is refilled
      if (threadIdx.x == 0 && next < tile_end) load_tile((next - tile_begin) % kStages, next);
    } else {
      CopyAsyncWait<kStages - 2>();
      __syncthreads();  // this tile landed for everyone; everyone is done with the previous one
      if (next < tile_end) load_tile((next - tile_begin) % kStages, next);
      CopyAsyncCommit();
    }
    if (tile == tile_begin) {  // Q landed with the first group: into registers, once
      const uint32_t q_frag =
          SmemAddress(q_smem) + ((lane % 16) * kStride + (lane / 16) * 8) * kBytes;
#pragma unroll
      for (int s = 0; s < kKSteps; ++s) {
        LdMatrixX4(qf[s], q_frag + s * 16 * kBytes);
        if (args.scale_log2 < 0) {
#pragma unroll
          for (int x = 0; x < 4; ++x) qf[s][x] ^= 0x80008000u;  // both halves' signs
        }
      }
    }

    // S = Q K^T for the 16 rows and this warp's 16 keys: two n8 tiles.
    const int n0 = tile * kN + warp_key0;
    const uint32_t k_frag = k_frag0 + stage * kStageBytes, v_frag = v_frag0 + stage * kStageBytes;
    float score[2][4] = {};
#pragma unroll
    for (int s = 0; s < kKSteps; ++s) {
      uint32_t kb[4];
      LdMatrixX4(kb, k_frag + frag_offset(k_row, k_chunk, s));
      Mma<T>(score[0], qf[s], kb[0], kb[1]);
      Mma<T>(score[1], qf[s], kb[2], kb[3]);
    }
    if (capped) {
#pragma unroll
      for (int t = 0; t < 2; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          score[t][e] = pa.softcap * tanhf(score[t][e] * pa.softcap_scale);
      }
    }
    // Keys a row does not see (past the keys, above the causal diagonal, outside the window):
    // -inf, on the tiles where some row's range begins or ends.
    if (tile * kN < max_first || tile * kN + kN > min_end) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int t = 0; t < 2; ++t) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int key = n0 + t * 8 + quad * 2 + e;
            if (key < first[half] || key >= end[half]) score[t][half * 2 + e] = -INFINITY;
          }
        }
      }
    }

    float ref[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float tile_max =
          QuadReduce(TreeMax<2>(score, half), [](float a, float c) { return fmaxf(a, c); });
      const float new_max = fmaxf(row_max[half], tile_max);
      ref[half] = new_max == -INFINITY ? 0.0f : ScaleScore(new_max, scale);
      const float rescale = FastExp2(ScaleScore(row_max[half], scale) - ref[half]);
      row_max[half] = new_max;
      row_sum[half] *= rescale;
#pragma unroll
      for (int d = 0; d < kDTiles; ++d) {
        out[d][half * 2] *= rescale;
        out[d][half * 2 + 1] *= rescale;
      }
    }
    uint32_t p_frag[4];
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      const float p0 = FastExp2(ScaleScore(score[t][0], scale) - ref[0]);
      const float p1 = FastExp2(ScaleScore(score[t][1], scale) - ref[0]);
      const float p2 = FastExp2(ScaleScore(score[t][2], scale) - ref[1]);
      const float p3 = FastExp2(ScaleScore(score[t][3], scale) - ref[1]);
      row_sum[0] += p0 + p1;
      row_sum[1] += p2 + p3;
      p_frag[t * 2 + 0] = MmaType<T>::Pack(p0, p1);
      p_frag[t * 2 + 1] = MmaType<T>::Pack(p2, p3);
    }
    // O += P V over the warp's 16 keys (one k16 step), V through ldmatrix.trans.
#pragma unroll
    for (int d = 0; d < kDTiles; d += 2) {
      uint32_t vb[4];
      LdMatrixX4Trans(vb, v_frag + frag_offset(v_row, v_chunk, d / 2));
      Mma<T>(out[d], p_frag, vb[0], vb[1]);
      Mma<T>(out[d + 1], p_frag, vb[2], vb[3]);
    }
  }

  // Merge the warps: each leaves its rows' max (raw score), sum and unnormalised output in
  // shared memory, which the pipeline no longer needs.
  if constexpr (!kTma) CopyAsyncWait<0>();  // the ring's empty groups
  __syncthreads();
  float* merge_out = reinterpret_cast<float*>(smem);         // [kWarps][kM][kDim]
  float* merge_max = merge_out + Tiles::kWarps * kM * kDim;  // [kWarps][kM]
  float* merge_sum = merge_max + Tiles::kWarps * kM;         // [kWarps][kM]
  float* merge_weight = merge_sum + Tiles::kWarps * kM;      // [kWarps][kM]
  float* merge_total = merge_weight + Tiles::kWarps * kM;    // [kM]
  float* merge_row_max = merge_total + kM;                   // [kM]
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = group + half * 8;
    const float sum = QuadReduce(row_sum[half], [](float a, float c) { return a + c; });
    if (quad == 0) {
      merge_max[warp * kM + r] = row_max[half];
      merge_sum[warp * kM + r] = sum;
    }
#pragma unroll
    for (int d = 0; d < kDTiles; ++d) {
      float* dst = merge_out + (warp * kM + r) * kDim + d * 8 + quad * 2;
      dst[0] = out[d][half * 2];
      dst[1] = out[d][half * 2 + 1];
    }
  }
  __syncthreads();
  // Per row, once: the block's max, each warp's weight (its max rescaled to the block's) and the
  // row's total sum; the elements below only add up weighted outputs.
  if (threadIdx.x < kM) {
    const int r = threadIdx.x;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < Tiles::kWarps; ++w) m = fmaxf(m, merge_max[w * kM + r]);
    const float m_scaled = m == -INFINITY ? 0.0f : ScaleScore(m, scale);
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < Tiles::kWarps; ++w) {
      const float weight = FastExp2(ScaleScore(merge_max[w * kM + r], scale) - m_scaled);
      merge_weight[w * kM + r] = weight;
      sum += weight * merge_sum[w * kM + r];
    }
    merge_total[r] = sum;
    merge_row_max[r] = m;
  }
  __syncthreads();

  for (int e = threadIdx.x; e < kM * kDim; e += Tiles::kThreads) {
    const int r = e / kDim, c = e % kDim;
    if (r >= valid_rows) continue;
    float acc = 0.0f;
#pragma unroll
    for (int w = 0; w < Tiles::kWarps; ++w) {
      acc += merge_weight[w * kM + r] * merge_out[(w * kM + r) * kDim + c];
    }
    const float m = merge_row_max[r], sum = merge_total[r];
    const float m_scaled = m == -INFINITY ? 0.0f : ScaleScore(m, scale);
    const float value = sum > 0.0f ? acc / sum : 0.0f;  // no visible key: zeros
    const int64_t row = row_of(row0 + r);
    if (splits == 1) {
      static_cast<T*>(p.o)[row * kDim + c] = MmaType<T>::ToPair(value, 0.0f).x;
      if (c == 0 && p.lse != nullptr) p.lse[row] = RowLogSumExp(m, sum, scale);
    } else {
      // The split's scaled max (log2 domain) and sum, not their LSE: an LSE of 1e10 (scores of
      // 1e11) has an ulp of 1024 and would lose the sum's logarithm entirely.
      const int64_t slot = row * (kPaged ? pa.max_splits : args.splits) + split;
      args.partial_o[slot * kDim + c] = value;
      if (c == 0) {
        args.partial_max[slot] = m == -INFINITY ? -INFINITY : m_scaled;
        args.partial_sum[slot] = sum;
      }
    }
  }
}

// Merges the splits of every row: with m_s a split's scaled max (log2 domain), l_s its sum and
// M the largest m_s (whose factor is exactly exp2(0) = 1), o = sum_s w_s o_s / sum_s w_s with
// w_s = exp2(m_s - M) l_s, and the LSE (M + log2(sum_s w_s)) ln 2. A row no split saw a key for
// gets zeros and -inf. Block: one row, kDim x kCombineGroups threads; the first warp works out
// the weights (a lane per split), then thread (c, g) sums column c over splits g, g + groups,
// ... with four loads in flight, and the groups add up in shared memory: a row has up to
// kMaxSplits splits, and a loop of dependent loads over them took 10 us at B=1, Sk=128k.
// Launched as a programmatic dependent of the decode kernel, it waits for that kernel's writes
// in WaitForPrimaryGrid instead of for a second launch.
constexpr int kCombineGroups = 4;

template <typename T, int kDim, bool kPaged>
__global__ void __launch_bounds__(kDim* kCombineGroups) CombineKernel(const KernelArgs args) {
  __shared__ float weights[Tiles::kMaxSplits];
  __shared__ float group_acc[kCombineGroups - 1][kDim];
  __shared__ float row_total, row_max;
  const AttentionParams& p = args.params;
  const PagedArgs& pa = args.paged;
  const int64_t row = blockIdx.x;
  int splits = args.splits;
  int64_t stride = args.splits;  // partial slots per row
  if constexpr (kPaged) {  // this row's sequence's splits; with one (or none: a prefill chunk, or
                           // no rows), the row's o was written by the kernel that computed it
    splits = pa.splits_of_sequence[pa.sequence_of_row[row / p.heads]];
    stride = pa.max_splits;
    if (splits <= 1) return;  // the whole block: the condition is the row's
  }
  WaitForPrimaryGrid();
  const int c = threadIdx.x, g = threadIdx.y;
  if (g == 0 && c < 32) {
    const float* maxes = args.partial_max + row * stride;
    const float* sums = args.partial_sum + row * stride;
    float m = -INFINITY;
    for (int s = c; s < splits; s += 32) m = fmaxf(m, maxes[s]);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
    }
    float sum = 0.0f;
    for (int s = c; s < splits; s += 32) {
      const float weight = m == -INFINITY ? 0.0f : exp2f(maxes[s] - m) * sums[s];
      weights[s] = weight;
      sum += weight;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
    if (c == 0) row_total = sum, row_max = m;
  }
  __syncthreads();
  const float* partial = args.partial_o + row * stride * kDim + c;
  float acc[4] = {};
  int s = g;
  for (; s + 3 * kCombineGroups < splits; s += 4 * kCombineGroups) {
#pragma unroll
    for (int x = 0; x < 4; ++x) {
      acc[x] += weights[s + x * kCombineGroups] * partial[(s + x * kCombineGroups) * kDim];
    }
  }
  for (; s < splits; s += kCombineGroups) acc[0] += weights[s] * partial[s * kDim];
  const float mine = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  if (g > 0) group_acc[g - 1][c] = mine;
  __syncthreads();
  if (g > 0) return;
  float total = mine;
#pragma unroll
  for (int x = 0; x < kCombineGroups - 1; ++x) total += group_acc[x][c];
  const float value = row_total > 0.0f ? total / row_total : 0.0f;
  static_cast<T*>(p.o)[row * kDim + c] = MmaType<T>::ToPair(value, 0.0f).x;
  if (c == 0 && p.lse != nullptr) {
    p.lse[row] = row_total > 0.0f ? (row_max + log2f(row_total)) * kLn2 : -INFINITY;
  }
}

// The paged append: k_new and v_new row t (of sequence b, query i of q_len) into the caches at
// position kv_len - q_len + i of b, through its page table; one 16-byte chunk per thread.
template <typename T, int kDim>
__global__ void AppendKernel(const KernelArgs args) {
  const PagedArgs& pa = args.paged;
  const int64_t kv_heads = args.params.kv_heads;
  constexpr int kChunks = kDim / 8;
  const int64_t chunks = pa.total_q * kv_heads * kChunks;
  for (int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; c < chunks;
       c += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = c / (kv_heads * kChunks);
    const int64_t kvh = (c / kChunks) % kv_heads, col = (c % kChunks) * 8;
    const int b = pa.sequence_of_row[t];
    const int64_t q_start = pa.cu_seqlens_q[b], q_len = pa.cu_seqlens_q[b + 1] - q_start;
    const int64_t j = pa.kv_lens[b] - q_len + (t - q_start);
    const int64_t page = pa.page_table[int64_t{b} * pa.max_pages_per_seq + (j >> pa.page_shift)];
    const int64_t slot = (page << pa.page_shift) + (j & ((int64_t{1} << pa.page_shift) - 1));
    const int64_t to = (slot * kv_heads + kvh) * kDim + col,
                  from = (t * kv_heads + kvh) * kDim + col;
    reinterpret_cast<uint4*>(static_cast<T*>(pa.k_cache) + to)[0] =
        reinterpret_cast<const uint4*>(static_cast<const T*>(pa.k_new) + from)[0];
    reinterpret_cast<uint4*>(static_cast<T*>(pa.v_cache) + to)[0] =
        reinterpret_cast<const uint4*>(static_cast<const T*>(pa.v_new) + from)[0];
  }
}

template <typename T, int kDim>
KernelStatus Launch(const AttentionParams& p, const Split& split, void* workspace,
                    cudaStream_t stream) {
  constexpr int kSmem = SharedMemoryBytes(kDim, sizeof(T));
  constexpr auto kernel = DecodeKernel<T, kDim, false>;
  const int64_t blocks = split.units * split.splits;
  if (blocks > 0x7fffffff || p.kv_len > 0x7fffffff - Tiles::kBlockN) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "attention decode: at most 2^31 blocks and keys per call");
  }
  static DeviceSetUp set_up;
  int sms = 0;
  if (KernelStatus s = SetUpOnce(kernel, kSmem, "attention decode", set_up, &sms); !s.ok()) {
    return s;
  }
  KernelArgs args;
  args.params = p;
  args.scale_log2 = p.scale * kLog2e;
  args.row_blocks = split.row_blocks;
  args.splits = split.splits;
  args.tiles_per_split = split.tiles_per_split;
  if constexpr (Tiles::kTma) {
    for (auto [map, base] : {std::pair{&args.k_map, p.k}, std::pair{&args.v_map, p.v}}) {
      KernelStatus s =
          EncodeRowTiles("decode", map, p.dtype, base, kDim, p.kv_len, p.batch * p.kv_heads,
                         Tiles::kBlockN, Tiles::kL2PromotionBytes);
      if (!s.ok()) return s;
    }
  }
  if (split.splits > 1) {
    const int64_t rows = p.batch * p.heads * p.q_len;
    const int64_t stats = PartialStatsFloats(rows, split.splits);
    args.partial_max = static_cast<float*>(workspace);
    args.partial_sum = args.partial_max + stats / 2;
    args.partial_o = args.partial_max + stats;
  }
  kernel<<<static_cast<unsigned>(blocks), Tiles::kThreads, kSmem, stream>>>(args);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return FromCuda(e, "attention decode launch");
  }
  if (split.splits > 1) {
    const int64_t rows = p.batch * p.heads * p.q_len;
    return FromCuda(
        LaunchDependent(CombineKernel<T, kDim, false>, dim3(static_cast<unsigned>(rows)),
                        dim3(kDim, kCombineGroups), 0, stream, args),
        "attention decode combine launch");
  }
  return KernelStatus::Ok();
}

// The paged source: `args` complete (paged.cc fills it), `blocks` work items; with `append`, the
// append kernel runs first on the same stream, so the attention reads the appended rows. The
// causal prefill chunks run before the decode blocks: in the sm90 kernel with `prefill_sm90`
// (its arguments, complete), else in the sm80 kernel.
template <typename T, int kDim>
KernelStatus LaunchPaged(const KernelArgs& args, int64_t blocks, bool append,
                         const sm90::KernelArgs* prefill_sm90, cudaStream_t stream) {
  constexpr int kSmemGather = SharedMemoryBytes(kDim, sizeof(T), /*tma=*/false);
  constexpr int kSmemTma = SharedMemoryBytes(kDim, sizeof(T), /*tma=*/true);
  constexpr auto gather = DecodeKernel<T, kDim, true, false>;
  constexpr auto tma = DecodeKernel<T, kDim, true, true>;
  const bool by_tma = PagedByTma(args.paged.page_shift);
  if (blocks > 0x7fffffff) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "paged attention: at most 2^31 blocks per call");
  }
  static DeviceSetUp set_up_gather, set_up_tma;
  int sms = 0;
  if (KernelStatus s = by_tma
                           ? SetUpOnce(tma, kSmemTma, "paged attention", set_up_tma, &sms)
                           : SetUpOnce(gather, kSmemGather, "paged attention", set_up_gather, &sms);
      !s.ok()) {
    return s;
  }
  if (append && args.paged.total_q > 0) {
    const int64_t chunks = args.paged.total_q * args.params.kv_heads * (kDim / 8);
    const int64_t grid = std::min<int64_t>((chunks + 255) / 256, 65535);
    AppendKernel<T, kDim><<<static_cast<unsigned>(grid), 256, 0, stream>>>(args);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
      return FromCuda(e, "paged attention append launch");
    }
  }
  if (args.paged.prefill_blocks > 0 && prefill_sm90 != nullptr) {
    if (KernelStatus s = sm90::LaunchPaged<T, kDim>(*prefill_sm90, stream); !s.ok()) return s;
  } else if (args.paged.prefill_blocks > 0) {  // the causal prefill chunks, 128 query rows a block
    sm80::KernelArgs prefill;
    prefill.params = args.params;
    prefill.scale_log2 = args.scale_log2;
    prefill.paged = {args.paged.prefill_work, args.paged.cu_seqlens_q,      args.paged.kv_lens,
                     args.paged.page_table,   args.paged.max_pages_per_seq, args.paged.page_shift};
    if (KernelStatus s = sm80::LaunchPaged<T, kDim>(prefill, args.paged.prefill_blocks, stream);
        !s.ok()) {
      return s;
    }
  }
  if (blocks == 0) return KernelStatus::Ok();
  if (by_tma) {
    tma<<<static_cast<unsigned>(blocks), Tiles::kThreads, kSmemTma, stream>>>(args);
  } else {
    gather<<<static_cast<unsigned>(blocks), Tiles::kThreads, kSmemGather, stream>>>(args);
  }
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return FromCuda(e, "paged attention launch");
  }
  if (args.paged.max_splits > 1) {
    const int64_t rows = args.paged.total_q * args.params.heads;
    return FromCuda(LaunchDependent(CombineKernel<T, kDim, true>, dim3(static_cast<unsigned>(rows)),
                                    dim3(kDim, kCombineGroups), 0, stream, args),
                    "paged attention combine launch");
  }
  return KernelStatus::Ok();
}

}  // namespace an1::kernels::attention::decode
