// The fused attention kernel template (see kernels/flash_attention.h). Included only by the
// per-instantiation translation units in this folder, one per (dtype, head_dim, causal).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda_check.h"
#include "kernels/flash_attention.h"

namespace an1::kernels::flash {

// Tile choices, with the reason beside each.
template <bool kCausal>
struct Tiles {
  // 4 warps, 2 m16 row tiles per warp (128 query rows per block): every K and V fragment read
  // from shared memory feeds both row tiles, halving the ldmatrix traffic that bounds the loop
  // (dense 2.39 -> 1.90 ms at 8x32x2048x128 on an H100), and K/V are re-read from L2 once per
  // 128 rows. 255 registers for head_dim 128: two blocks per SM.
  static constexpr int kWarps = 4;
  static constexpr int kRowTiles = 2;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = kWarps * 16 * kRowTiles;
  static constexpr int kBlockN = 64;  // 64 keys per tile: 8 n8 MMA tiles of scores
  static constexpr int kPad = 8;      // +16 bytes per smem row: ldmatrix conflict-free
  // Q + two K/V buffers = 104 KiB of shared memory at head_dim 128: two blocks per SM, as the
  // registers allow. A third buffer would cost the second block.
  static constexpr int kKvBuffers = 2;
  // Blocks resident per SM, for the head groups of the launch (2 * SMs query blocks per group).
  static constexpr int kBlocksPerSm = 2;
};

template <typename T>
struct MmaType;
template <>
struct MmaType<__half> {
  static __device__ uint32_t Pack(float a, float b) {
    __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __half2 ToPair(float a, float b) { return __floats2half2_rn(a, b); }
};
template <>
struct MmaType<__nv_bfloat16> {
  static __device__ uint32_t Pack(float a, float b) {
    __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __nv_bfloat162 ToPair(float a, float b) { return __floats2bfloat162_rn(a, b); }
};

__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ldmatrix takes 32-bit shared-memory addresses: a base register plus compile-time offsets,
// which keeps the address arithmetic out of the 255 registers the accumulators need.
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// D (16x8 fp32) += A (16x16, row) * B (16x8, col).
template <typename T>
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// 16 bytes global -> shared, asynchronously; rows past `valid` are zero-filled.
__device__ __forceinline__ void CopyAsync16(void* smem, const void* global, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddress(smem)),
               "l"(global), "r"(bytes));
}
__device__ __forceinline__ void CopyAsyncCommit() { asm volatile("cp.async.commit_group;\n"); }
template <int kPending>
__device__ __forceinline__ void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Loads rows [row0, row0 + kRows) of a (rows, kDim) matrix into smem with stride kDim + kPad;
// rows at or past `rows` read as zeros. Thread t copies the 16-byte chunks t, t + kThreads, ...
// (fully unrolled: each thread's column and first row are fixed, the rest are constants).
template <int kRows, int kDim, int kThreads, int kPad, typename T>
__device__ __forceinline__ void LoadTile(T* smem, const T* global, int row0, int rows) {
  constexpr int kChunksPerRow = kDim / 8;  // 8 elements = 16 bytes
  constexpr int kRowsPerPass = kThreads / kChunksPerRow;
  static_assert(kThreads % kChunksPerRow == 0 && kRows % kRowsPerPass == 0);
  const int first = threadIdx.x / kChunksPerRow, col = (threadIdx.x % kChunksPerRow) * 8;
#pragma unroll
  for (int pass = 0; pass < kRows / kRowsPerPass; ++pass) {
    const int r = first + pass * kRowsPerPass;
    const bool valid = row0 + r < rows;
    const T* src = global + (valid ? int64_t{row0 + r} * kDim + col : 0);
    CopyAsync16(smem + r * (kDim + kPad) + col, src, valid);
  }
}

// 2^x with the MUFU instruction alone (flush-to-zero; exp2f adds range fix-ups around it): the
// softmax calls it for every score, so it sits on the loop's critical path. 2^-inf = 0.
__device__ __forceinline__ float FastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// A score times the (positive) log2-domain scale, rounded on its own: never contracted into an
// FMA with the subtraction of the row max that follows. The max element's scaled score then
// equals the scaled max bit for bit and contributes exactly exp2(0) = 1 at any magnitude; an FMA
// would subtract the rounded max from the exact product, leaving the max's rounding error (about
// 1e4 at scores of 1e11) in the exponent: inf or 0 instead of 1.
__device__ __forceinline__ float ScaleScore(float score, float scale) {
  return __fmul_rn(score, scale);
}

// The row max as a tree, not a chain: with two warps per scheduler, a chain of dependent
// instructions stalls on every link. One row half of a warp's n8 score tiles.
template <int kTiles>
__device__ __forceinline__ float TreeMax(const float (&score)[kTiles][4], int half) {
  float m[kTiles];
#pragma unroll
  for (int t = 0; t < kTiles; ++t) m[t] = fmaxf(score[t][half * 2], score[t][half * 2 + 1]);
#pragma unroll
  for (int width = kTiles / 2; width > 0; width /= 2) {
#pragma unroll
    for (int t = 0; t < width; ++t) m[t] = fmaxf(m[t], m[t + width]);
  }
  return m[0];
}
// Flips the sign of the 16-byte chunks of a (kRows, kDim) tile that LoadTile had this thread
// copy (so after this thread's cp.async wait they are visible to it without a barrier).
template <int kRows, int kDim, int kThreads, int kPad, typename T>
__device__ __forceinline__ void FlipSigns(T* smem) {
  constexpr int kChunksPerRow = kDim / 8;
  for (int c = threadIdx.x; c < kRows * kChunksPerRow; c += kThreads) {
    uint4* chunk = reinterpret_cast<uint4*>(smem + (c / kChunksPerRow) * (kDim + kPad) +
                                            (c % kChunksPerRow) * 8);
    uint4 x = *chunk;
    x.x ^= 0x80008000u, x.y ^= 0x80008000u, x.z ^= 0x80008000u, x.w ^= 0x80008000u;
    *chunk = x;
  }
}

template <typename T, int kDim, bool kCausal>
__global__ void __launch_bounds__(Tiles<kCausal>::kThreads)
    FlashAttentionKernel(const __grid_constant__ FlashAttentionParams p) {
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

  // Lengths fit an int (Launch checks), so in-head indices are 32-bit: fewer registers.
  const int q_len = static_cast<int>(p.q_len), kv_len = static_cast<int>(p.kv_len);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;
  // Blocks run in groups of `heads_per_group` (batch, head) pairs, all query blocks of a group
  // together: about one wave, so each head's K/V come from DRAM once and then from L2. Inside a
  // group, causal blocks further down (more keys) go first, so the last wave is short.
  const int64_t blocks_m = (p.q_len + kM - 1) / kM, bh_count = p.batch * p.heads;
  const int64_t head_group = blockIdx.x / (p.heads_per_group * blocks_m);
  const int64_t in_group = blockIdx.x % (p.heads_per_group * blocks_m);
  const int64_t group_heads = min(p.heads_per_group, bh_count - head_group * p.heads_per_group);
  const int64_t bh = head_group * p.heads_per_group + in_group % group_heads;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t kv_head = b * p.kv_heads + h / (p.heads / p.kv_heads);
  const int block_m =
      static_cast<int>(kCausal ? blocks_m - 1 - in_group / group_heads : in_group / group_heads);
  const int m0 = block_m * kM;
  const T* q = static_cast<const T*>(p.q) + bh * p.q_len * kDim;
  const T* k = static_cast<const T*>(p.k) + kv_head * p.kv_len * kDim;
  const T* v = static_cast<const T*>(p.v) + kv_head * p.kv_len * kDim;
  T* o = static_cast<T*>(p.o) + bh * p.q_len * kDim;

  // Keys this block may see: causal rows see keys j <= i + (Sk - Sq); tiles above it are skipped.
  // Tiles before `full_tiles` need no mask at all (every row of the block sees every key of
  // them); the rest (the diagonal band and a partial last tile) are masked per element.
  const int diagonal = kv_len - q_len;
  int n_end = kv_len, unmasked_end = kv_len;
  if constexpr (kCausal) {
    const int64_t last = int64_t{m0} + kM - 1 + diagonal;  // the block's last visible key
    n_end = last < 0 ? 0 : (last + 1 < kv_len ? static_cast<int>(last + 1) : kv_len);
    const int64_t first = int64_t{m0} + diagonal;  // the block's first row's last visible key
    unmasked_end = first < 0 ? 0 : (first + 1 < kv_len ? static_cast<int>(first + 1) : kv_len);
  }
  const int tiles = (n_end + kN - 1) / kN, full_tiles = unmasked_end / kN;

  // A negative scale is folded into Q (its sign bits flipped once in shared memory), so the
  // loop works with a positive scale: the running max is taken on raw scores and exp2 takes
  // one fused multiply-add.
  // A zero scale becomes a tiny one (the same weights to fp32 precision) so that masked scores
  // stay -inf instead of -inf * 0 = NaN.
  const float scale = fmaxf(fabsf(p.scale_log2), 1e-30f);
  LoadTile<kM, kDim, Tile::kThreads, Tile::kPad>(q_smem, q, m0, q_len);
  CopyAsyncCommit();
  if (tiles > 0) {
    LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(0, 0), k, 0, kv_len);
    LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(0, 1), v, 0, kv_len);
    CopyAsyncCommit();
  }
  if (p.scale_log2 < 0) {
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
      LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(tile + 1, 0), k, n0 + kN, kv_len);
      LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(tile + 1, 1), v, n0 + kN, kv_len);
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
        const int keys_left = kv_len - n0;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int limit =
              kCausal ? min(row_of(r, half) + diagonal + 1 - n0, keys_left) : keys_left;
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
        float tile_max = TreeMax<kSTiles>(score[r], half);
#pragma unroll
        for (int offset = 1; offset < 4; offset <<= 1) {  // the 4 threads sharing a row
          tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
        }
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
      float sum = row_sum[r][half];
#pragma unroll
      for (int offset = 1; offset < 4; offset <<= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // no visible key: zeros
      const int row = row_of(r, half);
      if (row >= q_len) continue;
#pragma unroll
      for (int d = 0; d < kDTiles; ++d) {
        *reinterpret_cast<decltype(MmaType<T>::ToPair(0, 0))*>(o + int64_t{row} * kDim + d * 8 +
                                                               quad * 2) =
            MmaType<T>::ToPair(out[r][d][half * 2] * inv, out[r][d][half * 2 + 1] * inv);
      }
    }
  }
}

constexpr int kMaxDevices = 64;

template <typename T, int kDim, bool kCausal>
KernelStatus Launch(const FlashAttentionParams& p, cudaStream_t stream) {
  using Tile = Tiles<kCausal>;
  constexpr int kStride = kDim + Tile::kPad;
  constexpr int kSmem =
      (Tile::kBlockM + 2 * Tile::kKvBuffers * Tile::kBlockN) * kStride * sizeof(T);
  auto kernel = FlashAttentionKernel<T, kDim, kCausal>;
  const int64_t blocks_m = (p.q_len + Tile::kBlockM - 1) / Tile::kBlockM;
  const int64_t blocks = blocks_m * p.batch * p.heads;
  if (blocks > 0x7fffffff || p.q_len > 0x7fffffff - Tile::kBlockM ||
      p.kv_len > 0x7fffffff - Tile::kBlockN) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "flash attention: at most 2^31 blocks, queries and keys per call");
  }
  // Per device, once: the shared-memory opt-in (a per-device function attribute) and the SM
  // count. Racing first launches on one device both set the same attribute, which is harmless.
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) {
    return KernelStatus::Error(KernelStatus::Kind::kInternal, "flash attention: no current device");
  }
  static std::atomic<int> sms_of[kMaxDevices] = {};  // 0: not configured yet
  int sms = sms_of[device].load(std::memory_order_acquire);
  if (sms == 0) {
    cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (e != cudaSuccess) return FromCuda(e, "flash attention setup");
    sms_of[device].store(sms, std::memory_order_release);
  }
  // Heads per group: enough query blocks to fill the GPU once.
  FlashAttentionParams launch = p;
  launch.heads_per_group = std::max<int64_t>(1, Tile::kBlocksPerSm * sms / blocks_m);
  kernel<<<static_cast<unsigned>(blocks), Tile::kThreads, kSmem, stream>>>(launch);
  return FromCuda(cudaGetLastError(), "flash attention launch");
}

}  // namespace an1::kernels::flash
