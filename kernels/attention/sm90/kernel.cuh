// The sm90 (Hopper) attention kernel template: FlashAttention-3's design. A persistent grid (one
// block per SM) takes the (batch x head, query block) work tiles from a queue (an atomic counter
// in the workspace: a block that finishes early takes the next tile, heaviest causal tiles
// first, heads grouped so their K/V stay in L2); in each block warpgroup 0 loads Q, K and V
// tiles by TMA into a shared-memory ring guarded by full/empty mbarriers, and
// two consumer warpgroups (64 query rows each) compute S = Q K^T with wgmma from shared memory,
// the online softmax in registers, and O += P V with P from registers; inside a warpgroup the
// previous tile's P V runs on the tensor cores while this tile's softmax runs. (Pingpong, the
// two warpgroups taking turns at issuing their GEMMs through named barriers, measured 3-12%
// slower on the H200: tests/bench/RESULTS.md.) The output leaves through shared
// memory by TMA (from registers with the wide tiles of long dense problems, tiles.h). Included
// only by the generated per-instantiation translation units (kernels/CMakeLists.txt); the
// family's interface is kernels/attention/attention.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "kernels/attention/common/causal.h"
#include "kernels/attention/common/launch_setup.h"
#include "kernels/attention/common/mma_sync.cuh"
#include "kernels/attention/common/online_softmax.cuh"
#include "kernels/attention/common/scheduling.cuh"
#include "kernels/attention/sm90/async_copy.cuh"
#include "kernels/attention/sm90/launch.h"
#include "kernels/attention/sm90/tiles.h"
#include "kernels/attention/sm90/wgmma.cuh"
#include "kernels/cuda_check.h"

namespace an1::kernels::attention::sm90 {

// Where everything sits in a block's shared memory (byte offsets from a 1024-aligned base).
// Every tile is stored as 64-column boxes of 128-byte rows, 128-byte swizzled, box after box.
// kN keys per K/V tile; the output tile only when it goes through shared memory.
template <int kDim, int kN, bool kPaged>
struct SharedLayout {
  static constexpr bool kStoreO = StoresOutputThroughSmem(kN, kPaged);
  static constexpr int kBoxes = kDim / Tiles::kBoxColumns;
  static constexpr uint32_t kQBytes = Tiles::kBlockM * kDim * 2;
  static constexpr uint32_t kKvBytes = kN * kDim * 2;  // one K or V tile
  static constexpr uint32_t kQBox = Tiles::kBlockM * 128, kKvBox = kN * 128;
  static constexpr uint32_t kOBox = 64 * 128;  // one consumer warpgroup's rows
  static constexpr uint32_t kQ = 0;
  static constexpr uint32_t kK = kQ + kQBytes;
  static constexpr uint32_t kV = kK + Tiles::kStages * kKvBytes;
  static constexpr uint32_t kO = kV + Tiles::kStages * kKvBytes;
  static constexpr uint32_t kBarriers = kO + (kStoreO ? Tiles::kBlockM * kDim * 2 : 0);
  static constexpr uint32_t kEnd = kBarriers + 1024;
  static_assert(kEnd + 1024 == static_cast<uint32_t>(SharedMemoryBytes(kDim, kN, kPaged)));
  static_assert(kKvBox % 1024 == 0, "every box starts on a swizzle boundary");
};

// The block's mbarriers. full: the producer's TMA landed; empty: all 256 consumer threads are
// done reading (so the producer may overwrite). `tile` is the work tile whose Q the producer
// loads: written before it arrives on q_full, read by the consumers after they waited there
// (the barrier orders the two); work_tiles or more: no tile left, the block ends.
struct Barriers {
  uint64_t q_full, q_empty;
  uint64_t k_full[Tiles::kStages], k_empty[Tiles::kStages];
  uint64_t v_full[Tiles::kStages], v_empty[Tiles::kStages];
  int64_t tile;
};

// One work tile: 128 query rows of one (batch, head), and the K/V tiles they see.
struct WorkTile {
  int64_t bh;       // batch * heads + head; paged: the head
  int64_t kv_head;  // batch * kv_heads + head / group; paged: head / group
  int64_t q_start;  // paged: the sequence's first row of q (0 otherwise)
  int sequence;     // paged: the sequence (its page-table row)
  int q_len, kv_len;
  int m0;          // first query row (of the sequence)
  int tiles;       // K/V tiles the block's last row sees (those past it are skipped)
  int full_tiles;  // tiles before this one need no mask: the block's first row sees all keys
};

template <bool kCausal, bool kPaged, int kN>
__device__ __forceinline__ WorkTile Work(const KernelArgs& a, int64_t index) {
  WorkTile w;
  if constexpr (kPaged) {
    const int4 t = a.paged.work[index];
    w.sequence = t.x;
    w.q_start = a.paged.cu_seqlens_q[t.x];
    w.q_len = static_cast<int>(a.paged.cu_seqlens_q[t.x + 1] - w.q_start);
    w.kv_len = a.paged.kv_lens[t.x];
    w.bh = t.y;
    w.kv_head = t.y / a.group;
    w.m0 = t.z * Tiles::kBlockM;
  } else {
    const QueryBlock block =
        HeadGroupedBlock(index, a.blocks_m, int64_t{a.batch} * a.heads, a.heads_per_group, kCausal);
    w.bh = block.bh;
    const int64_t b = block.bh / a.heads, h = block.bh % a.heads;
    w.kv_head = b * a.kv_heads + h / a.group;
    w.q_start = 0;
    w.sequence = 0;
    w.q_len = a.q_len;
    w.kv_len = a.kv_len;
    w.m0 = block.block_m * Tiles::kBlockM;
  }
  const int n_end = VisibleKeys(w.m0 + Tiles::kBlockM - 1, w.q_len, w.kv_len, kCausal);
  w.tiles = (n_end + kN - 1) / kN;
  w.full_tiles = VisibleKeys(w.m0, w.q_len, w.kv_len, kCausal) / kN;
  return w;
}

// The producer: one thread issues every TMA load of the block's work tiles, in the order the
// consumers use them, each into the next free stage of the ring. Paged, a K or V tile is loaded
// a page (at most kBlockN slots) at a time, only the pages holding keys below kv_len: page-table
// entries past a sequence's last page are never read; the slots of the last page at or past
// kv_len land too (the consumers mask their scores and zero their V rows).
template <int kDim, bool kCausal, bool kPaged, int kN>
__device__ void Produce(const KernelArgs& a, uint8_t* smem, Barriers& bar) {
  using L = SharedLayout<kDim, kN, kPaged>;
  PrefetchTensorMap(&a.q_map);
  PrefetchTensorMap(&a.k_map);
  PrefetchTensorMap(&a.v_map);
  if constexpr (L::kStoreO) PrefetchTensorMap(&a.o_map);
  uint32_t kv_iter = 0;
  // Block b starts with tile b; every later tile comes from the queue.
  int64_t index = blockIdx.x;
  for (uint32_t local = 0;; ++local) {
    Wait(&bar.q_empty, (local & 1) ^ 1);
    *static_cast<volatile int64_t*>(&bar.tile) = index;
    if (index >= a.work_tiles) {
      Arrive(&bar.q_full);  // the consumers see no tile left and end
      return;
    }
    const WorkTile w = Work<kCausal, kPaged, kN>(a, index);
    ArriveExpectBytes(&bar.q_full, L::kQBytes);
#pragma unroll
    for (int box = 0; box < L::kBoxes; ++box) {
      if constexpr (kPaged) {  // rows past the sequence are the next one's (never stored)
        TmaLoad3d(smem + L::kQ + box * L::kQBox, &a.q_map, &bar.q_full, box * Tiles::kBoxColumns,
                  static_cast<int>(w.bh), static_cast<int>(w.q_start + w.m0));
      } else {
        TmaLoad3d(smem + L::kQ + box * L::kQBox, &a.q_map, &bar.q_full, box * Tiles::kBoxColumns,
                  w.m0, static_cast<int>(w.bh));
      }
    }
    // Paged: box x of a tile holds keys j = n0 + x * box_rows.., slots page_table[sequence][j >>
    // shift] << shift | (j & mask).. of this KV head. Everything but n0 and the tile's address is
    // re-read from parameter space: the producer has few registers.
    const int kv_head = static_cast<int>(w.kv_head), sequence = w.sequence, kv_len = w.kv_len;
    auto load_kv = [&](uint8_t* tile, const CUtensorMap* map, uint64_t* full, int n0) {
      if constexpr (kPaged) {
        static_assert(kN == Tiles::kBlockN);
        const int shift = a.paged.page_shift;
        const int box_rows = min(1 << shift, Tiles::kBlockN);
        const int boxes = (min(Tiles::kBlockN, kv_len - n0) + box_rows - 1) / box_rows;
        ArriveExpectBytes(full, boxes * box_rows * 128 * L::kBoxes);
        const int32_t* pages = a.paged.page_table + int64_t{sequence} * a.paged.max_pages_per_seq;
        for (int x = 0; x < boxes; ++x) {
          const int j = n0 + x * box_rows;
          const int slot = (pages[j >> shift] << shift) + (j & ((1 << shift) - 1));
#pragma unroll
          for (int box = 0; box < L::kBoxes; ++box) {
            TmaLoad3d(tile + box * L::kKvBox + x * box_rows * 128, map, full,
                      box * Tiles::kBoxColumns, kv_head, slot);
          }
        }
      } else {
        ArriveExpectBytes(full, L::kKvBytes);
#pragma unroll
        for (int box = 0; box < L::kBoxes; ++box) {
          TmaLoad3d(tile + box * L::kKvBox, map, full, box * Tiles::kBoxColumns, n0, kv_head);
        }
      }
    };
    // Asked now, used after this tile's loads: the atomic's latency hides behind them.
    index = gridDim.x + static_cast<int64_t>(atomicAdd(a.tile_counter, 1ull));
    for (int j = 0; j < w.tiles; ++j, ++kv_iter) {
      const int stage = kv_iter % Tiles::kStages;
      const uint32_t phase = (kv_iter / Tiles::kStages) & 1;
      const int n0 = j * kN;
      Wait(&bar.k_empty[stage], phase ^ 1);
      load_kv(smem + L::kK + stage * L::kKvBytes, &a.k_map, &bar.k_full[stage], n0);
      Wait(&bar.v_empty[stage], phase ^ 1);
      load_kv(smem + L::kV + stage * L::kKvBytes, &a.v_map, &bar.v_full[stage], n0);
    }
  }
}

// The max of the first kCount of `m`, as a tree: each level folds the upper half (rounded
// down) onto the lower. Recursive on kCount so that every index is a constant (a runtime index
// would put `m` in local memory).
template <int kCount, int kSize>
__device__ __forceinline__ float TreeMax(float (&m)[kSize]) {
  if constexpr (kCount == 1) {
    return m[0];
  } else {
    constexpr int kUpper = (kCount + 1) / 2;
#pragma unroll
    for (int i = 0; i < kCount / 2; ++i) m[i] = fmaxf(m[i], m[i + kUpper]);
    return TreeMax<kUpper>(m);
  }
}

// The max of one row half (0: row lo, 1: row hi) of a thread's m64nN scores (N/8 n8 blocks).
template <int kN>
__device__ __forceinline__ float RowHalfMax(const float (&s)[kN / 2], int half) {
  float m[kN / 8];
#pragma unroll
  for (int nb = 0; nb < kN / 8; ++nb) {
    m[nb] = fmaxf(s[4 * nb + 2 * half], s[4 * nb + 2 * half + 1]);
  }
  return TreeMax<kN / 8>(m);
}

// The online softmax of one tile of scores, in place: s becomes exp2(s * scale - max) for the
// thread's two rows; `row_max` (log2 domain, scaled) and the thread's partial `row_sum` move
// on; `rescale` is what the accumulated output must be multiplied by. Scores are scaled first
// (rounded on their own: ScaleScore) and the max taken of scaled scores, so any sign of scale
// works and the max element contributes exactly 1; masked scores become -inf after scaling.
template <bool kMasked, bool kCausal, int kN>
__device__ __forceinline__ void OnlineSoftmax(float (&s)[kN / 2], float (&row_max)[2],
                                              float (&row_sum)[2], float (&rescale)[2],
                                              const int (&row)[2], int n0, int q_len, int kv_len,
                                              float scale_log2, int quad) {
#pragma unroll
  for (int i = 0; i < kN / 2; ++i) s[i] = ScaleScore(s[i], scale_log2);
  if constexpr (kMasked) {  // past the keys, and above the causal diagonal
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int limit = VisibleKeys(row[half], q_len, kv_len, kCausal) - n0;
#pragma unroll
      for (int nb = 0; nb < kN / 8; ++nb) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (nb * 8 + quad * 2 + e >= limit) s[4 * nb + 2 * half + e] = -INFINITY;
        }
      }
    }
  }
  float ref[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float tile_max =
        QuadReduce(RowHalfMax<kN>(s, half), [](float x, float y) { return fmaxf(x, y); });
    const float new_max = fmaxf(row_max[half], tile_max);
    // A row that has seen no key yet keeps -inf; subtract 0 then: exp2 gives 0, not NaN.
    ref[half] = new_max == -INFINITY ? 0.0f : new_max;
    rescale[half] = FastExp2(row_max[half] - ref[half]);
    row_max[half] = new_max;
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int nb = 0; nb < kN / 8; ++nb) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = s[4 * nb + 2 * half + e];
        x = FastExp2(x - ref[half]);
        sum[half] += x;
      }
    }
  }
#pragma unroll
  for (int half = 0; half < 2; ++half) row_sum[half] = row_sum[half] * rescale[half] + sum[half];
}

// P as the A operand of P V: k16 step kk takes n8 blocks 2kk and 2kk + 1 of the scores (the
// m16n8 accumulator layout of two blocks is the m16k16 A layout).
template <typename T, int kN>
__device__ __forceinline__ void ToOperandA(const float (&s)[kN / 2], uint32_t (&p)[kN / 16][4]) {
#pragma unroll
  for (int kk = 0; kk < kN / 16; ++kk) {
    p[kk][0] = MmaType<T>::Pack(s[8 * kk + 0], s[8 * kk + 1]);
    p[kk][1] = MmaType<T>::Pack(s[8 * kk + 2], s[8 * kk + 3]);
    p[kk][2] = MmaType<T>::Pack(s[8 * kk + 4], s[8 * kk + 5]);
    p[kk][3] = MmaType<T>::Pack(s[8 * kk + 6], s[8 * kk + 7]);
  }
}

// A consumer warpgroup: 64 query rows of every work tile of the block.
template <typename T, int kDim, bool kCausal, bool kPaged, int kN>
__device__ void Consume(const KernelArgs& a, uint8_t* smem, Barriers& bar, int wg) {
  using L = SharedLayout<kDim, kN, kPaged>;
  constexpr int kSteps = kN / 16;  // k16 steps of P V
  constexpr int kOut = kDim / 2;   // accumulator floats per thread
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  const int group = lane / 4, quad = lane % 4;
  const uint32_t base = SmemAddress(smem);
  const uint32_t q_addr = base + L::kQ + wg * 64 * 128;  // this warpgroup's 64 rows of each box
  uint8_t* o_smem = smem + L::kO + wg * L::kBoxes * L::kOBox;

  // S = Q K^T for this warpgroup's rows and the kN keys of a stage, issued, not waited for.
  auto issue_qk = [&](float(&s)[kN / 2], int stage) {
    const uint32_t k_addr = base + L::kK + stage * L::kKvBytes;
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kDim / 16; ++kk) {
      const uint32_t box = kk / 4, column_bytes = (kk % 4) * 32;
      WgmmaSS<T, kN>(s, KMajorDescriptor(q_addr + box * L::kQBox + column_bytes),
                     KMajorDescriptor(k_addr + box * L::kKvBox + column_bytes), kk > 0 ? 1 : 0);
    }
    WgmmaCommit();
  };
  // O += P V over the kN keys of a stage (k16 steps of 16 keys = 2048 bytes of V each).
  auto issue_pv = [&](float(&o)[kOut], const uint32_t(&p)[kSteps][4], int stage) {
    const uint32_t v_addr = base + L::kV + stage * L::kKvBytes;
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) {
      WgmmaRS<T, kDim>(o, p[kk], MnMajorDescriptor(v_addr + kk * 16 * 128, L::kKvBox), 1);
    }
    WgmmaCommit();
  };

  uint32_t kv_iter = 0;
  for (uint32_t local = 0;; ++local) {
    Wait(&bar.q_full, local & 1);
    const int64_t index = *static_cast<volatile int64_t*>(&bar.tile);
    if (index >= a.work_tiles) break;
    const WorkTile w = Work<kCausal, kPaged, kN>(a, index);
    const int row[2] = {w.m0 + wg * 64 + warp * 16 + group, w.m0 + wg * 64 + warp * 16 + group + 8};
    float o[kOut];
#pragma unroll
    for (int i = 0; i < kOut; ++i) o[i] = 0.0f;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f}, rescale[2];
    // O (accumulated up to the previous tile) onto the running max of the last softmax; before
    // the first P V, o is zero and rescale 0.
    auto rescale_o = [&] {
#pragma unroll
      for (int nb = 0; nb < kDim / 8; ++nb) {
        o[4 * nb + 0] *= rescale[0];
        o[4 * nb + 1] *= rescale[0];
        o[4 * nb + 2] *= rescale[1];
        o[4 * nb + 3] *= rescale[1];
      }
    };
    if (w.tiles == 0) {
      Arrive(&bar.q_empty);  // rows that see no key: zeros, LSE -inf
    } else {
      float s[kN / 2];
      uint32_t p[kSteps][4];
      int stage = kv_iter % Tiles::kStages;
      uint32_t phase = (kv_iter / Tiles::kStages) & 1;
      Wait(&bar.k_full[stage], phase);
      issue_qk(s, stage);
      WgmmaWait<0>();
      FenceRegisters(s);
      Arrive(&bar.k_empty[stage]);
      if (w.tiles == 1) Arrive(&bar.q_empty);
      if (w.full_tiles > 0) {
        OnlineSoftmax<false, kCausal, kN>(s, row_max, row_sum, rescale, row, 0, w.q_len, w.kv_len,
                                          a.scale_log2, quad);
      } else {
        OnlineSoftmax<true, kCausal, kN>(s, row_max, row_sum, rescale, row, 0, w.q_len, w.kv_len,
                                         a.scale_log2, quad);
      }
      ToOperandA<T, kN>(s, p);
      for (int j = 1; j < w.tiles; ++j) {
        const int previous = stage;
        const uint32_t previous_phase = phase;
        ++kv_iter;
        stage = kv_iter % Tiles::kStages;
        phase = (kv_iter / Tiles::kStages) & 1;
        // This tile's Q K^T, then the previous tile's P V: the softmax below overlaps P V. The
        // output's rescale for the previous tile's max runs while Q K^T does.
        Wait(&bar.k_full[stage], phase);
        issue_qk(s, stage);
        rescale_o();
        Wait(&bar.v_full[previous], previous_phase);
        issue_pv(o, p, previous);
        WgmmaWait<1>();  // Q K^T done
        FenceRegisters(s);
        Arrive(&bar.k_empty[stage]);
        if (j + 1 == w.tiles) Arrive(&bar.q_empty);
        if (j < w.full_tiles) {
          OnlineSoftmax<false, kCausal, kN>(s, row_max, row_sum, rescale, row, j * kN, w.q_len,
                                            w.kv_len, a.scale_log2, quad);
        } else {
          OnlineSoftmax<true, kCausal, kN>(s, row_max, row_sum, rescale, row, j * kN, w.q_len,
                                           w.kv_len, a.scale_log2, quad);
        }
        WgmmaWait<0>();  // P V done: o and p may change
        FenceRegisters(o);
        Arrive(&bar.v_empty[previous]);
        ToOperandA<T, kN>(s, p);
      }
      rescale_o();
      Wait(&bar.v_full[stage], phase);
      const int n_last = (w.tiles - 1) * kN;
      if (kPaged && n_last + kN > w.kv_len) {
        // The last tile's V rows at or past kv_len: zeros (their P is 0, but 0 x NaN is NaN);
        // both warpgroups share the work, then wait for each other (named barrier 3).
        uint8_t* v_tile = smem + L::kV + stage * L::kKvBytes;
        const int first = w.kv_len - n_last;
        const int chunks = (kN - first) * 8 * L::kBoxes;  // 16 bytes each
        for (int c = wg * 128 + tid; c < chunks; c += Tiles::kConsumerWarpgroups * 128) {
          const int box = c % L::kBoxes, r = first + (c / L::kBoxes) / 8;
          *reinterpret_cast<uint4*>(v_tile + box * L::kKvBox + r * 128 + (c / L::kBoxes) % 8 * 16) =
              make_uint4(0, 0, 0, 0);
        }
        FenceAsyncShared();
        NamedBarrierSync(3, Tiles::kConsumerWarpgroups * 128);
      }
      issue_pv(o, p, stage);
      WgmmaWait<0>();
      FenceRegisters(o);
      Arrive(&bar.v_empty[stage]);
      ++kv_iter;
    }

    // Epilogue: normalise, write the LSE, then the output tile through shared memory by TMA.
    float inv[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float sum = QuadReduce(row_sum[half], [](float x, float y) { return x + y; });
      inv[half] = sum > 0.0f ? 1.0f / sum : 0.0f;  // no visible key: zeros
      if (a.lse != nullptr && quad == 0 && row[half] < w.q_len) {
        const int64_t at =
            kPaged ? (w.q_start + row[half]) * a.heads + w.bh : w.bh * w.q_len + row[half];
        a.lse[at] = sum > 0.0f ? (row_max[half] + __log2f(sum)) * kLn2 : -INFINITY;
      }
    }
    if constexpr (!L::kStoreO) {  // from registers; paged, only this sequence's rows
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        if (row[half] >= w.q_len) continue;
        const int64_t out_row =
            kPaged ? (w.q_start + row[half]) * a.heads + w.bh : w.bh * w.q_len + row[half];
        T* out = static_cast<T*>(a.o) + out_row * kDim;
#pragma unroll
        for (int nb = 0; nb < kDim / 8; ++nb) {
          auto pair = MmaType<T>::ToPair(o[4 * nb + 2 * half] * inv[half],
                                         o[4 * nb + 2 * half + 1] * inv[half]);
          *reinterpret_cast<decltype(pair)*>(out + nb * 8 + quad * 2) = pair;
        }
      }
      continue;
    }
    if (tid == 0) TmaStoreWaitRead();  // the previous tile's store has read o_smem
    NamedBarrierSync(1 + wg, 128);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = warp * 16 + group + half * 8;  // row within the warpgroup's 64
#pragma unroll
      for (int nb = 0; nb < kDim / 8; ++nb) {
        const int chunk = (nb % 8) ^ (r % 8);  // the 128-byte swizzle TMA reads back
        auto pair = MmaType<T>::ToPair(o[4 * nb + 2 * half] * inv[half],
                                       o[4 * nb + 2 * half + 1] * inv[half]);
        *reinterpret_cast<decltype(pair)*>(o_smem + (nb / 8) * L::kOBox + r * 128 + chunk * 16 +
                                           quad * 4) = pair;
      }
    }
    FenceAsyncShared();
    NamedBarrierSync(1 + wg, 128);
    if (tid == 0 && w.m0 + wg * 64 < a.q_len) {
#pragma unroll
      for (int box = 0; box < L::kBoxes; ++box) {
        TmaStore3d(&a.o_map, o_smem + box * L::kOBox, box * Tiles::kBoxColumns, w.m0 + wg * 64,
                   static_cast<int>(w.bh));
      }
      TmaStoreCommit();
    }
  }
  if (tid == 0) TmaStoreWaitAll();
}

template <typename T, int kDim, bool kCausal, bool kPaged, int kN>
__global__ void __launch_bounds__(Tiles::kThreads, 1)
    Sm90Kernel(const __grid_constant__ KernelArgs args) {
  using L = SharedLayout<kDim, kN, kPaged>;
  extern __shared__ uint8_t smem_raw[];
  // The swizzle pattern is tied to address bits 7-9: tiles start on 1024-byte boundaries.
  uint8_t* smem = smem_raw + ((1024 - (SmemAddress(smem_raw) & 1023)) & 1023);
  Barriers& bar = *reinterpret_cast<Barriers*>(smem + L::kBarriers);
  constexpr uint32_t kConsumerThreads = Tiles::kConsumerWarpgroups * 128;
  if (threadIdx.x == 0) {
    BarrierInit(&bar.q_full, 1);
    BarrierInit(&bar.q_empty, kConsumerThreads);
#pragma unroll
    for (int s = 0; s < Tiles::kStages; ++s) {
      BarrierInit(&bar.k_full[s], 1);
      BarrierInit(&bar.k_empty[s], kConsumerThreads);
      BarrierInit(&bar.v_full[s], 1);
      BarrierInit(&bar.v_empty[s], kConsumerThreads);
    }
    FenceBarrierInit();
  }
  __syncthreads();
  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    DecreaseRegisters<kPaged ? Tiles::kPagedProducerRegisters : Tiles::kProducerRegisters>();
    if (threadIdx.x == 0) Produce<kDim, kCausal, kPaged, kN>(args, smem, bar);
  } else {
    IncreaseRegisters<kPaged ? Tiles::kPagedConsumerRegisters : Tiles::kConsumerRegisters>();
    Consume<T, kDim, kCausal, kPaged, kN>(args, smem, bar, warpgroup - 1);
  }
}

// The dense or causal kernel with kN keys per tile.
template <typename T, int kDim, bool kCausal, int kN>
KernelStatus LaunchTiles(const AttentionParams& p, void* workspace, cudaStream_t stream) {
  constexpr int kSmem = SharedMemoryBytes(kDim, kN);
  auto kernel = Sm90Kernel<T, kDim, kCausal, /*kPaged=*/false, kN>;
  static DeviceSetUp set_up = {};
  int sms = 0;
  if (KernelStatus ready = SetUpOnce(kernel, kSmem, "attention sm90", set_up, &sms); !ready.ok()) {
    return ready;
  }
  KernelArgs args{};
  if (KernelStatus encoded = EncodeTensorMaps(p, kN, &args); !encoded.ok()) return encoded;
  args.lse = p.lse;
  args.o = p.o;  // stored from registers with wide tiles
  args.scale_log2 = p.scale * kLog2e;
  args.q_len = static_cast<int>(p.q_len);
  args.kv_len = static_cast<int>(p.kv_len);
  args.heads = static_cast<int>(p.heads);
  args.kv_heads = static_cast<int>(p.kv_heads);
  args.group = static_cast<int>(p.heads / p.kv_heads);
  args.batch = static_cast<int>(p.batch);
  args.blocks_m = static_cast<int>((p.q_len + Tiles::kBlockM - 1) / Tiles::kBlockM);
  args.work_tiles = int64_t{args.blocks_m} * p.batch * p.heads;
  args.heads_per_group = HeadsPerGroup(args.blocks_m, 1, sms);
  const int64_t grid = std::min<int64_t>(args.work_tiles, sms);
  // The tile queue starts at 0 on the launch's stream: concurrent launches have their own.
  args.tile_counter = static_cast<unsigned long long*>(workspace);
  if (cudaError_t e = cudaMemsetAsync(workspace, 0, kWorkspaceBytes, stream); e != cudaSuccess) {
    return FromCuda(e, "attention sm90 tile queue");
  }
  kernel<<<static_cast<unsigned>(grid), Tiles::kThreads, kSmem, stream>>>(args);
  return FromCuda(cudaGetLastError(), "attention sm90 launch");
}

// The kernel for `p`, with the key tile BlockN (tiles.h) chooses: a dense head_dim-128 unit
// holds both tile widths.
template <typename T, int kDim, bool kCausal>
KernelStatus Launch(const AttentionParams& p, void* workspace, cudaStream_t stream) {
  if constexpr (!kCausal && kDim == 128) {
    if (BlockN(kDim, kCausal, p.kv_len) == Tiles::kWideBlockN) {
      return LaunchTiles<T, kDim, kCausal, Tiles::kWideBlockN>(p, workspace, stream);
    }
  }
  return LaunchTiles<T, kDim, kCausal, Tiles::kBlockN>(p, workspace, stream);
}

// The paged source: `args` complete (the decode family's paged launcher fills it: maps from
// EncodePagedTensorMaps, work_tiles = the prefill blocks, tile_counter = kWorkspaceBytes of
// device memory, zeroed here), causal only; on `stream`.
template <typename T, int kDim>
KernelStatus LaunchPaged(const KernelArgs& args, cudaStream_t stream) {
  constexpr int kSmem = SharedMemoryBytes(kDim, Tiles::kBlockN, /*paged=*/true);
  auto kernel = Sm90Kernel<T, kDim, /*kCausal=*/true, /*kPaged=*/true, Tiles::kBlockN>;
  static DeviceSetUp set_up = {};
  int sms = 0;
  if (KernelStatus ready = SetUpOnce(kernel, kSmem, "paged attention sm90", set_up, &sms);
      !ready.ok()) {
    return ready;
  }
  if (cudaError_t e = cudaMemsetAsync(args.tile_counter, 0, kWorkspaceBytes, stream);
      e != cudaSuccess) {
    return FromCuda(e, "paged attention sm90 tile queue");
  }
  const int64_t grid = std::min<int64_t>(args.work_tiles, sms);
  kernel<<<static_cast<unsigned>(grid), Tiles::kThreads, kSmem, stream>>>(args);
  return FromCuda(cudaGetLastError(), "paged attention sm90 launch");
}

}  // namespace an1::kernels::attention::sm90
