// The fused attention kernel template (see kernels/flash_attention.h). Included only by the
// per-instantiation translation units in this folder, one per (dtype, head_dim, causal).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

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

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddress(p)));
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddress(p)));
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
// rows at or past `rows` read as zeros.
template <int kRows, int kDim, int kThreads, int kPad, typename T>
__device__ __forceinline__ void LoadTile(T* smem, const T* global, int64_t row0, int64_t rows) {
  constexpr int kChunksPerRow = kDim / 8;  // 8 elements = 16 bytes
  constexpr int kChunks = kRows * kChunksPerRow;
  for (int c = threadIdx.x; c < kChunks; c += kThreads) {
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const bool valid = row0 + r < rows;
    const T* src = global + (valid ? (row0 + r) * kDim + col : 0);
    CopyAsync16(smem + r * (kDim + kPad) + col, src, valid);
  }
}

// Column limit relative to a tile start, clamped to [-1, n] so that it fits an int.
__device__ __forceinline__ int ClampToTile(int64_t limit, int n) {
  return static_cast<int>(limit < -1 ? -1 : (limit > n ? n : limit));
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
  auto kv = [&](int64_t buffer, int which) {
    return q_smem + (kM + (buffer % 2) * 2 * kN + which * kN) * kStride;
  };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;
  const int64_t bh = blockIdx.x;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t kv_head = b * p.kv_heads + h / (p.heads / p.kv_heads);
  // Blocks are scheduled x-fastest, so every (batch, head) gets its y-th query block before any
  // gets its next one; causal blocks further down see more keys, so those go first and the last
  // wave is short.
  const int64_t block_m = kCausal ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  const int64_t m0 = block_m * kM;
  const T* q = static_cast<const T*>(p.q) + bh * p.q_len * kDim;
  const T* k = static_cast<const T*>(p.k) + kv_head * p.kv_len * kDim;
  const T* v = static_cast<const T*>(p.v) + kv_head * p.kv_len * kDim;
  T* o = static_cast<T*>(p.o) + bh * p.q_len * kDim;

  // Keys this block may see: causal rows see keys j <= i + (Sk - Sq); tiles above it are skipped.
  const int64_t diagonal = p.kv_len - p.q_len;
  int64_t n_end = p.kv_len;
  if constexpr (kCausal) {
    const int64_t last = m0 + kM - 1 + diagonal;  // the block's last row's last visible key
    n_end = last < 0 ? 0 : (last + 1 < p.kv_len ? last + 1 : p.kv_len);
  }

  LoadTile<kM, kDim, Tile::kThreads, Tile::kPad>(q_smem, q, m0, p.q_len);
  CopyAsyncCommit();

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

  if (n_end > 0) {
    LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(0, 0), k, 0, p.kv_len);
    LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(0, 1), v, 0, p.kv_len);
    CopyAsyncCommit();
  }
  for (int64_t n0 = 0, tile = 0; n0 < n_end; n0 += kN, ++tile) {
    const T* k_smem = kv(tile, 0);
    const T* v_smem = kv(tile, 1);
    if (n0 + kN < n_end) {  // prefetch the next tile into the other buffer
      LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(tile + 1, 0), k, n0 + kN, p.kv_len);
      LoadTile<kN, kDim, Tile::kThreads, Tile::kPad>(kv(tile + 1, 1), v, n0 + kN, p.kv_len);
      CopyAsyncCommit();
      CopyAsyncWait<1>();  // everything but the prefetch has landed: Q and this tile
    } else {
      CopyAsyncWait<0>();
    }
    __syncthreads();

    // S = Q K^T for this warp's row tiles and the tile's 64 keys. Each K fragment loaded from
    // shared memory serves every row tile of the warp (half the ldmatrix traffic with two).
    float score[kR][kSTiles][4] = {};
#pragma unroll
    for (int s = 0; s < kKSteps; ++s) {
      uint32_t qf[kR][4];
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        const T* src = q_smem + ((r * Tile::kWarps + warp) * 16 + lane % 16) * kStride + s * 16 +
                       (lane / 16) * 8;
        LdMatrixX4(qf[r], src);
      }
#pragma unroll
      for (int t = 0; t < kSTiles; t += 2) {
        uint32_t kb[4];
        const T* src = k_smem + (t * 8 + (lane % 8) + (lane / 16) * 8) * kStride + s * 16 +
                       ((lane / 8) % 2) * 8;
        LdMatrixX4(kb, src);
#pragma unroll
        for (int r = 0; r < kR; ++r) {
          Mma<T>(score[r][t], qf[r], kb[0], kb[1]);
          Mma<T>(score[r][t + 1], qf[r], kb[2], kb[3]);
        }
      }
    }

    // Mask (past the keys, and causal) only in tiles that cross an edge; scale to log2 units;
    // update the running max and rescale what was accumulated.
    bool needs_mask = n0 + kN > p.kv_len;
    if constexpr (kCausal) needs_mask = needs_mask || n0 + kN - 1 > m0 + diagonal;
    const int keys_left = ClampToTile(p.kv_len - n0, kN);
    uint32_t p_frag[kR][kSTiles / 2][4];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      int limit[2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        limit[half] = kCausal ? ClampToTile(row_of(r, half) + diagonal + 1 - n0, kN) : kN;
      }
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = t * 8 + quad * 2 + (e % 2);
          const bool visible = !needs_mask || (col < keys_left && col < limit[e / 2]);
          score[r][t][e] = visible ? score[r][t][e] * p.scale_log2 : -INFINITY;
          tile_max[e / 2] = fmaxf(tile_max[e / 2], score[r][t][e]);
        }
      }
      float ref[2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int offset = 1; offset < 4; offset <<= 1) {  // the 4 threads sharing a row
          tile_max[half] =
              fmaxf(tile_max[half], __shfl_xor_sync(0xffffffffu, tile_max[half], offset));
        }
        const float new_max = fmaxf(row_max[r][half], tile_max[half]);
        // A row that has seen no key yet keeps -inf; subtract 0 then: exp2 gives 0, not NaN.
        ref[half] = new_max == -INFINITY ? 0.0f : new_max;
        const float rescale = exp2f(row_max[r][half] - ref[half]);
        row_max[r][half] = new_max;
        row_sum[r][half] *= rescale;
#pragma unroll
        for (int d = 0; d < kDTiles; ++d) {
          out[r][d][half * 2] *= rescale;
          out[r][d][half * 2 + 1] *= rescale;
        }
      }
      // P = exp2(S - max), kept in registers as the A operand of P V (the m16n8 accumulator
      // layout of two score tiles is the m16k16 A layout).
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) {
        const float p0 = exp2f(score[r][t][0] - ref[0]), p1 = exp2f(score[r][t][1] - ref[0]);
        const float p2 = exp2f(score[r][t][2] - ref[1]), p3 = exp2f(score[r][t][3] - ref[1]);
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
        const T* src = v_smem + (s * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * kStride + d * 8 +
                       (lane / 16) * 8;
        LdMatrixX4Trans(vb, src);
#pragma unroll
        for (int r = 0; r < kR; ++r) {
          Mma<T>(out[r][d], p_frag[r][s], vb[0], vb[1]);
          Mma<T>(out[r][d + 1], p_frag[r][s], vb[2], vb[3]);
        }
      }
    }
    __syncthreads();  // the next prefetch overwrites the buffer this tile used
  }
  if (n_end <= 0) {
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
      const int64_t row = row_of(r, half);
      if (row >= p.q_len) continue;
#pragma unroll
      for (int d = 0; d < kDTiles; ++d) {
        *reinterpret_cast<decltype(MmaType<T>::ToPair(0, 0))*>(o + row * kDim + d * 8 + quad * 2) =
            MmaType<T>::ToPair(out[r][d][half * 2] * inv, out[r][d][half * 2 + 1] * inv);
      }
    }
  }
}

template <typename T, int kDim, bool kCausal>
KernelStatus Launch(const FlashAttentionParams& p, cudaStream_t stream) {
  using Tile = Tiles<kCausal>;
  constexpr int kStride = kDim + Tile::kPad;
  constexpr int kSmem = (Tile::kBlockM + 4 * Tile::kBlockN) * kStride * sizeof(T);
  auto kernel = FlashAttentionKernel<T, kDim, kCausal>;
  static const cudaError_t configured =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (configured != cudaSuccess) return FromCuda(configured, "flash attention smem attribute");
  const int64_t blocks_m = (p.q_len + Tile::kBlockM - 1) / Tile::kBlockM;
  if (blocks_m > 65535 || p.batch * p.heads > 0x7fffffff) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "flash attention: at most 65535 query blocks per call");
  }
  const dim3 grid(static_cast<unsigned>(p.batch * p.heads), static_cast<unsigned>(blocks_m));
  kernel<<<grid, Tile::kThreads, kSmem, stream>>>(p);
  return FromCuda(cudaGetLastError(), "flash attention launch");
}

}  // namespace an1::kernels::flash
