// The sm80 attention kernel template: FlashAttention-2's design on mma.sync m16n8k16 fed by
// ldmatrix, cp.async double-buffered K/V tiles, the online softmax in fp32 registers, causal
// tiles above the diagonal skipped and only the diagonal band masked. Included only by the
// generated per-instantiation translation units (kernels/CMakeLists.txt), one per
// (dtype, head_dim, causal); the family's interface is kernels/attention/attention.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "kernels/attention/common/causal.h"
#include "kernels/attention/common/launch_setup.h"
#include "kernels/attention/common/mma_sync.cuh"
#include "kernels/attention/common/online_softmax.cuh"
#include "kernels/attention/common/scheduling.cuh"
#include "kernels/attention/sm80/launch.h"
#include "kernels/attention/sm80/tiles.h"
#include "kernels/cuda_check.h"

namespace an1::kernels::attention::sm80 {

// kPaged: the block's rows and keys are those of one sequence of a ragged batch over a paged
// cache (args.paged, a host-planned work list); Q rows and K/V rows are gathered a row at a
// time (K/V through the page table), slots at or past the sequence's kv_len never read.
template <typename T, int kDim, bool kCausal, bool kPaged = false>
__global__ void __launch_bounds__(Tiles<kCausal>::kThreads)
    Sm80Kernel(const __grid_constant__ KernelArgs args) {
  using Tile = Tiles<kCausal>;
  constexpr int kM = Tile::kBlockM, kN = Tile::kBlockN, kStride = kDim + Tile::kPad;
  constexpr int kR = Tile::kRowTiles;  // m16 row tiles per warp
  constexpr int kDTiles = kDim / 8;    // n8 tiles of the output
  constexpr int kKSteps = kDim / 16;   // k16 steps of Q K^T
  constexpr int kSTiles = kN / 8;      // n8 tiles of the scores
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Q, then two K/V buffers: the next tile loads while this one is computed.
  T* q_smem = reinterpret_cast<T*>(smem_raw);
  // Buffer b holds K at kv(b, 0) and V at kv(b, 1) (arithmetic, so no array in local memory).
  auto kv = [&](int buffer, int which) {
    return q_smem + (kM + (buffer % Tile::kKvBuffers) * 2 * kN + which * kN) * kStride;
  };

  const AttentionParams& p = args.params;
  const PagedRows& pa = args.paged;
  // Lengths fit an int (Launch checks), so in-head indices are 32-bit: fewer registers.
  int q_len, kv_len, m0;
  int64_t bh;
  int64_t q_start = 0;  // paged: the sequence's first row of q
  if constexpr (kPaged) {
    const int4 w = pa.work[blockIdx.x];
    q_start = pa.cu_seqlens_q[w.x];
    q_len = static_cast<int>(pa.cu_seqlens_q[w.x + 1] - q_start);
    kv_len = pa.kv_lens[w.x];
    bh = int64_t{w.x} * p.heads + w.y;
    m0 = w.z * kM;
  } else {
    q_len = static_cast<int>(p.q_len), kv_len = static_cast<int>(p.kv_len);
    const int64_t blocks_m = (p.q_len + kM - 1) / kM;
    const QueryBlock block =
        HeadGroupedBlock(blockIdx.x, blocks_m, p.batch * p.heads, args.heads_per_group, kCausal);
    bh = block.bh;
    m0 = block.block_m * kM;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t kv_head = b * p.kv_heads + h / (p.heads / p.kv_heads);
  const T* q = static_cast<const T*>(p.q) + (kPaged ? 0 : bh * p.q_len * kDim);
  const T* k = static_cast<const T*>(p.k) + (kPaged ? 0 : kv_head * p.kv_len * kDim);
  const T* v = static_cast<const T*>(p.v) + (kPaged ? 0 : kv_head * p.kv_len * kDim);
  T* o = static_cast<T*>(p.o) + (kPaged ? 0 : bh * p.q_len * kDim);
  // Row r (0-based, of the sequence or head) of q, o and the LSE: dense, row r of this head's
  // (q_len, head_dim) matrix; paged, row (q_start + r) x heads + h of the (total_q, heads) rows.
  auto q_row = [&](int r) -> int64_t { return kPaged ? (q_start + r) * p.heads + h : r; };
  // K/V tile loads: dense, rows n0.. of this KV head's matrix; paged, key j's cache slot
  // page_table[b][j >> page_shift] << page_shift | (j & mask), KV head h / group of it.
  auto load_kv = [&](int buffer, int n0) {
    if constexpr (kPaged) {
      const int32_t* pages = pa.page_table + b * pa.max_pages_per_seq;
      const int64_t slot_mask = (int64_t{1} << pa.page_shift) - 1;
      const int64_t kvh = h / (p.heads / p.kv_heads);
      auto slot_row = [&](const T* cache) {
        return [=](int r) -> const T* {
          const int j = n0 + r;
          if (j >= kv_len) return nullptr;  // never read: a slot past kv_len may hold anything
          const int64_t slot =
              (int64_t{pages[j >> pa.page_shift]} << pa.page_shift) + (j & slot_mask);
          return cache + (slot * p.kv_heads + kvh) * kDim;
        };
      };
      LoadRows<kN, kDim, Tile::kThreads, Tile::kPad>(kv(buffer, 0), slot_row(k), k);
      LoadRows<kN, kDim, Tile::kThreads, Tile::kPad>(kv(buffer, 1), slot_row(v), v);
    } else {
      LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(buffer, 0), k, n0, kv_len);
      LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(buffer, 1), v, n0, kv_len);
    }
  };

  // Keys this block may see: those its last row sees; tiles past them are skipped. Tiles before
  // `full_tiles` need no mask at all (the block's first row, and so every row, sees all of their
  // keys); the rest (the diagonal band and a partial last tile) are masked per element.
  const int n_end = VisibleKeys(m0 + kM - 1, q_len, kv_len, kCausal);
  const int unmasked_end = VisibleKeys(m0, q_len, kv_len, kCausal);
  const int tiles = (n_end + kN - 1) / kN, full_tiles = unmasked_end / kN;

  // A negative scale is folded into Q (its sign bits flipped once in shared memory), so the
  // loop works with a positive scale: the running max is taken on raw scores and exp2 takes
  // one fused multiply-add.
  // A zero scale becomes a tiny one (the same weights to fp32 precision) so that masked scores
  // stay -inf instead of -inf * 0 = NaN.
  const float scale = fmaxf(fabsf(args.scale_log2), 1e-30f);
  if constexpr (kPaged) {
    LoadRows<kM, kDim, Tile::kThreads, Tile::kPad>(
        q_smem,
        [&](int r) -> const T* { return m0 + r < q_len ? q + q_row(m0 + r) * kDim : nullptr; }, q);
  } else {
    LoadTile<kM, kDim, Tile::kThreads, Tile::kPad>(q_smem, q, m0, q_len);
  }
  CopyAsyncCommit();
  if (tiles > 0) {
    load_kv(0, 0);
    CopyAsyncCommit();
  }
  if (args.scale_log2 < 0) {
    CopyAsyncWait<0>();  // rare path: wait for everything, then flip the chunks this thread loaded
    FlipSigns<kM, kDim, Tile::kThreads, Tile::kPad>(q_smem);
  }

  // ldmatrix x4 addresses of this thread (bytes): Q rows of its warp's first row tile; K rows
  // as the B operand of Q K^T (n8 tile pairs); V rows, transposed, as the B operand of P V.
  constexpr uint32_t kBytes = sizeof(T), kBufferBytes = 2 * kN * kStride * kBytes;
  const uint32_t q_frag =
      SmemAddress(q_smem) + ((warp * 16 + lane % 16) * kStride + (lane / 16) * 8) * kBytes;
  const uint32_t k_frag0 = SmemAddress(kv(0, 0)) +
                           ((lane % 8 + (lane / 16) * 8) * kStride + ((lane / 8) % 2) * 8) * kBytes;
  const uint32_t v_frag0 = SmemAddress(kv(0, 1)) +
                           ((lane % 8 + ((lane / 8) % 2) * 8) * kStride + (lane / 16) * 8) * kBytes;

  // Row tile r of this warp covers block rows (r * kWarps + warp) * 16 + [0, 16); this thread
  // holds rows `group` and `group + 8` of it (lo and hi).
  auto row_of = [&](int r, int half) {
    return m0 + (r * Tile::kWarps + warp) * 16 + group + half * 8;
  };
  float out[kR][kDTiles][4] = {};
  float row_max[kR][2], row_sum[kR][2];
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    row_max[r][0] = row_max[r][1] = -INFINITY;
    row_sum[r][0] = row_sum[r][1] = 0.0f;
  }

  // One K/V tile: S = Q K^T, online softmax, O += P V. `masked` (a compile-time flag) adds the
  // per-element mask; the unmasked instance is the hot loop.
  auto step = [&](auto masked, int tile) {
    constexpr bool kMasked = decltype(masked)::value;
    const int n0 = tile * kN;
    // This thread's ldmatrix addresses in this tile's buffer (bytes); loops add constants.
    const uint32_t buffer = (tile % Tile::kKvBuffers) * kBufferBytes;
    const uint32_t k_frag = k_frag0 + buffer, v_frag = v_frag0 + buffer;
    // One barrier per tile: after it, this tile (and Q) has landed for every thread, and every
    // thread is done with the previous tile, whose buffer the prefetch of the next one reuses.
    CopyAsyncWait<0>();
    __syncthreads();
    if (tile + 1 < tiles) {
      load_kv(tile + 1, n0 + kN);
      CopyAsyncCommit();
    }

    // S = Q K^T for this warp's row tiles and the tile's 64 keys. Each K fragment loaded from
    // shared memory serves every row tile of the warp (half the ldmatrix traffic with two).
    float score[kR][kSTiles][4] = {};
#pragma unroll
    for (int s = 0; s < kKSteps; ++s) {
      uint32_t qf[kR][4];
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        LdMatrixX4(qf[r], q_frag + (r * Tile::kWarps * 16 * kStride + s * 16) * kBytes);
      }
#pragma unroll
      for (int t = 0; t < kSTiles; t += 2) {
        uint32_t kb[4];
        LdMatrixX4(kb, k_frag + (t * 8 * kStride + s * 16) * kBytes);
#pragma unroll
        for (int r = 0; r < kR; ++r) {
          Mma<T>(score[r][t], qf[r], kb[0], kb[1]);
          Mma<T>(score[r][t + 1], qf[r], kb[2], kb[3]);
        }
      }
    }

    uint32_t p_frag[kR][kSTiles / 2][4];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      if constexpr (kMasked) {  // past the keys, and above the causal diagonal: -inf
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int limit = VisibleKeys(row_of(r, half), q_len, kv_len, kCausal) - n0;
#pragma unroll
          for (int t = 0; t < kSTiles; ++t) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              if (t * 8 + quad * 2 + e >= limit) score[r][t][half * 2 + e] = -INFINITY;
            }
          }
        }
      }
      // Running max on raw scores (the scale is positive), then rescale what was accumulated.
      float ref[2], rescale[2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const float tile_max =  // over the 4 threads sharing the row
            QuadReduce(TreeMax<kSTiles>(score[r], half),
                       [](float a, float b) { return fmaxf(a, b); });
        const float new_max = fmaxf(row_max[r][half], tile_max);
        // A row that has seen no key yet keeps -inf; subtract 0 then: exp2 gives 0, not NaN.
        ref[half] = new_max == -INFINITY ? 0.0f : ScaleScore(new_max, scale);
        rescale[half] = FastExp2(ScaleScore(row_max[r][half], scale) - ref[half]);
        row_max[r][half] = new_max;
        row_sum[r][half] *= rescale[half];
      }
      // Once the running max settles (most tiles after the first few), no row of the warp
      // changes it: skip the 64 multiplies of the accumulator (a warp-uniform branch).
      if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) {
#pragma unroll
        for (int d = 0; d < kDTiles; ++d) {
          out[r][d][0] *= rescale[0];
          out[r][d][1] *= rescale[0];
          out[r][d][2] *= rescale[1];
          out[r][d][3] *= rescale[1];
        }
      }
      // P = exp2(S * scale - max * scale), kept in registers as the A operand of P V (the
      // m16n8 accumulator layout of two score tiles is the m16k16 A layout). The product is
      // rounded before the subtraction, exactly as for the max: see ScaleScore.
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) {
        const float p0 = FastExp2(ScaleScore(score[r][t][0], scale) - ref[0]);
        const float p1 = FastExp2(ScaleScore(score[r][t][1], scale) - ref[0]);
        const float p2 = FastExp2(ScaleScore(score[r][t][2], scale) - ref[1]);
        const float p3 = FastExp2(ScaleScore(score[r][t][3], scale) - ref[1]);
        row_sum[r][0] += p0 + p1;
        row_sum[r][1] += p2 + p3;
        p_frag[r][t / 2][(t % 2) * 2 + 0] = MmaType<T>::Pack(p0, p1);
        p_frag[r][t / 2][(t % 2) * 2 + 1] = MmaType<T>::Pack(p2, p3);
      }
    }

    // O += P V: V tiles through ldmatrix.trans give the B operand (keys x head_dim); each
    // fragment serves every row tile of the warp.
#pragma unroll
    for (int s = 0; s < kSTiles / 2; ++s) {
#pragma unroll
      for (int d = 0; d < kDTiles; d += 2) {
        uint32_t vb[4];
        LdMatrixX4Trans(vb, v_frag + (s * 16 * kStride + d * 8) * kBytes);
#pragma unroll
        for (int r = 0; r < kR; ++r) {
          Mma<T>(out[r][d], p_frag[r][s], vb[0], vb[1]);
          Mma<T>(out[r][d + 1], p_frag[r][s], vb[2], vb[3]);
        }
      }
    }
  };

  int tile = 0;
  for (; tile < full_tiles; ++tile) step(std::false_type{}, tile);
  for (; tile < tiles; ++tile) step(std::true_type{}, tile);
  if (tiles == 0) {
    CopyAsyncWait<0>();  // the Q load must land before the block ends
  }

#pragma unroll
  for (int r = 0; r < kR; ++r) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float sum = QuadReduce(row_sum[r][half], [](float a, float b) { return a + b; });
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // no visible key: zeros
      const int row = row_of(r, half);
      if (row >= q_len) continue;
      if (p.lse != nullptr && quad == 0) {
        // The head's first row, from `o` (live anyway): keeping `bh` costs registers in the loop.
        const int64_t head_row0 = (o - static_cast<T*>(p.o)) / kDim;
        p.lse[head_row0 + q_row(row)] = RowLogSumExp(row_max[r][half], sum, scale);
      }
#pragma unroll
      for (int d = 0; d < kDTiles; ++d) {
        *reinterpret_cast<decltype(MmaType<T>::ToPair(0, 0))*>(o + q_row(row) * kDim + d * 8 +
                                                               quad * 2) =
            MmaType<T>::ToPair(out[r][d][half * 2] * inv, out[r][d][half * 2 + 1] * inv);
      }
    }
  }
}

template <typename T, int kDim, bool kCausal>
KernelStatus Launch(const AttentionParams& p, cudaStream_t stream) {
  using Tile = Tiles<kCausal>;
  constexpr int kSmem = SharedMemoryBytes<kCausal>(kDim, sizeof(T));
  auto kernel = Sm80Kernel<T, kDim, kCausal>;
  const int64_t blocks_m = (p.q_len + Tile::kBlockM - 1) / Tile::kBlockM;
  const int64_t blocks = blocks_m * p.batch * p.heads;
  if (blocks > 0x7fffffff || p.q_len > 0x7fffffff - Tile::kBlockM ||
      p.kv_len > 0x7fffffff - Tile::kBlockN) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "attention sm80: at most 2^31 blocks, queries and keys per call");
  }
  static DeviceSetUp set_up = {};
  int sms = 0;
  if (KernelStatus ready = SetUpOnce(kernel, kSmem, "attention sm80", set_up, &sms); !ready.ok()) {
    return ready;
  }
  KernelArgs args;
  args.params = p;
  args.scale_log2 = p.scale * kLog2e;
  args.heads_per_group = HeadsPerGroup(blocks_m, Tile::kBlocksPerSm, sms);
  kernel<<<static_cast<unsigned>(blocks), Tile::kThreads, kSmem, stream>>>(args);
  return FromCuda(cudaGetLastError(), "attention sm80 launch");
}

// The paged source: `args` complete (the decode family's paged launcher fills it), `blocks` work
// items, causal only; on `stream`.
template <typename T, int kDim>
KernelStatus LaunchPaged(const KernelArgs& args, int64_t blocks, cudaStream_t stream) {
  constexpr int kSmem = SharedMemoryBytes<true>(kDim, sizeof(T));
  constexpr auto kernel = Sm80Kernel<T, kDim, /*kCausal=*/true, /*kPaged=*/true>;
  if (blocks > 0x7fffffff) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "paged attention sm80: at most 2^31 blocks per call");
  }
  static DeviceSetUp set_up = {};
  int sms = 0;
  if (KernelStatus ready = SetUpOnce(kernel, kSmem, "paged attention sm80", set_up, &sms);
      !ready.ok()) {
    return ready;
  }
  kernel<<<static_cast<unsigned>(blocks), Tiles<true>::kThreads, kSmem, stream>>>(args);
  return FromCuda(cudaGetLastError(), "paged attention sm80 launch");
}

}  // namespace an1::kernels::attention::sm80
