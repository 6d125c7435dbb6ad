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
  // Dense: 8 warps x 16 rows = 128 query rows share each K/V tile, halving the K/V re-reads
  // from L2 (the dense kernel's limit at 64 rows). Causal: 4 warps x 16 = 64 rows, so that two
  // blocks fit on an SM and the many short blocks near the diagonal overlap one another.
  static constexpr int kWarps = kCausal ? 4 : 8;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = kWarps * 16;   // one mma.m16 row tile per warp
  static constexpr int kBlockN = 64;            // 64 keys per tile: 8 n8 MMA tiles of scores
  static constexpr int kPad = 8;                // +16 bytes per smem row: ldmatrix conflict-free
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
  constexpr int kDTiles = kDim / 8;   // n8 tiles of the output
  constexpr int kKSteps = kDim / 16;  // k16 steps of Q K^T
  constexpr int kSTiles = kN / 8;     // n8 tiles of the scores
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

  // This thread's rows of the block: r_lo = warp * 16 + group, r_hi = r_lo + 8.
  const int64_t row_lo = m0 + warp * 16 + group, row_hi = row_lo + 8;
  float out[kDTiles][4] = {};
  float max_lo = -INFINITY, max_hi = -INFINITY, sum_lo = 0.0f, sum_hi = 0.0f;
  uint32_t q_frag[kKSteps][4];

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
    if (n0 == 0) {  // Q stays in registers for the whole block
      for (int s = 0; s < kKSteps; ++s) {
        const T* src = q_smem + (warp * 16 + lane % 16) * kStride + s * 16 + (lane / 16) * 8;
        LdMatrixX4(q_frag[s], src);
      }
    }

    // S = Q K^T for this warp's 16 rows and the tile's 64 keys.
    float score[kSTiles][4] = {};
#pragma unroll
    for (int s = 0; s < kKSteps; ++s) {
#pragma unroll
      for (int t = 0; t < kSTiles; t += 2) {
        uint32_t kb[4];
        const T* src = k_smem + (t * 8 + (lane % 8) + (lane / 16) * 8) * kStride + s * 16 +
                       ((lane / 8) % 2) * 8;
        LdMatrixX4(kb, src);
        Mma<T>(score[t], q_frag[s], kb[0], kb[1]);
        Mma<T>(score[t + 1], q_frag[s], kb[2], kb[3]);
      }
    }

    // Mask (past the keys, and causal) only in tiles that cross an edge; scale to log2 units;
    // update the running max.
    bool needs_mask = n0 + kN > p.kv_len;
    if constexpr (kCausal) needs_mask = needs_mask || n0 + kN - 1 > m0 + diagonal;
    // Within the tile, columns and the causal limit fit in 32 bits relative to n0.
    const int limit_lo = ClampToTile((kCausal ? row_lo + diagonal + 1 : p.kv_len) - n0, kN);
    const int limit_hi = ClampToTile((kCausal ? row_hi + diagonal + 1 : p.kv_len) - n0, kN);
    const int keys_left = ClampToTile(p.kv_len - n0, kN);
    float tile_max_lo = -INFINITY, tile_max_hi = -INFINITY;
#pragma unroll
    for (int t = 0; t < kSTiles; ++t) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = t * 8 + quad * 2 + (e % 2);
        const bool visible =
            !needs_mask || (col < keys_left && col < (e < 2 ? limit_lo : limit_hi));
        score[t][e] = visible ? score[t][e] * p.scale_log2 : -INFINITY;
      }
      tile_max_lo = fmaxf(tile_max_lo, fmaxf(score[t][0], score[t][1]));
      tile_max_hi = fmaxf(tile_max_hi, fmaxf(score[t][2], score[t][3]));
    }
#pragma unroll
    for (int offset = 1; offset < 4; offset <<= 1) {  // the 4 threads sharing a row
      tile_max_lo = fmaxf(tile_max_lo, __shfl_xor_sync(0xffffffffu, tile_max_lo, offset));
      tile_max_hi = fmaxf(tile_max_hi, __shfl_xor_sync(0xffffffffu, tile_max_hi, offset));
    }
    const float new_max_lo = fmaxf(max_lo, tile_max_lo), new_max_hi = fmaxf(max_hi, tile_max_hi);
    // A row that has seen no key yet keeps -inf; subtract 0 then, so that exp2 gives 0, not NaN.
    const float ref_lo = new_max_lo == -INFINITY ? 0.0f : new_max_lo;
    const float ref_hi = new_max_hi == -INFINITY ? 0.0f : new_max_hi;
    const float rescale_lo = exp2f(max_lo - ref_lo), rescale_hi = exp2f(max_hi - ref_hi);
    max_lo = new_max_lo;
    max_hi = new_max_hi;
    sum_lo *= rescale_lo;
    sum_hi *= rescale_hi;
#pragma unroll
    for (int d = 0; d < kDTiles; ++d) {
      out[d][0] *= rescale_lo;
      out[d][1] *= rescale_lo;
      out[d][2] *= rescale_hi;
      out[d][3] *= rescale_hi;
    }

    // P = exp2(S - max), kept in registers as the A operand of P V (the m16n8 accumulator
    // layout of two score tiles is the m16k16 A layout).
    uint32_t p_frag[kSTiles / 2][4];
#pragma unroll
    for (int t = 0; t < kSTiles; ++t) {
      const float p0 = exp2f(score[t][0] - ref_lo), p1 = exp2f(score[t][1] - ref_lo);
      const float p2 = exp2f(score[t][2] - ref_hi), p3 = exp2f(score[t][3] - ref_hi);
      sum_lo += p0 + p1;
      sum_hi += p2 + p3;
      p_frag[t / 2][(t % 2) * 2 + 0] = MmaType<T>::Pack(p0, p1);
      p_frag[t / 2][(t % 2) * 2 + 1] = MmaType<T>::Pack(p2, p3);
    }

    // O += P V: V tiles through ldmatrix.trans give the B operand (keys x head_dim).
#pragma unroll
    for (int s = 0; s < kSTiles / 2; ++s) {
#pragma unroll
      for (int d = 0; d < kDTiles; d += 2) {
        uint32_t vb[4];
        const T* src = v_smem + (s * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * kStride + d * 8 +
                       (lane / 16) * 8;
        LdMatrixX4Trans(vb, src);
        Mma<T>(out[d], p_frag[s], vb[0], vb[1]);
        Mma<T>(out[d + 1], p_frag[s], vb[2], vb[3]);
      }
    }
    __syncthreads();  // the next tile overwrites k_smem and v_smem
  }
  if (n_end <= 0) {
    CopyAsyncWait<0>();  // the Q load must land before the block ends
  }

#pragma unroll
  for (int offset = 1; offset < 4; offset <<= 1) {
    sum_lo += __shfl_xor_sync(0xffffffffu, sum_lo, offset);
    sum_hi += __shfl_xor_sync(0xffffffffu, sum_hi, offset);
  }
  const float inv_lo = sum_lo > 0.0f ? 1.0f / sum_lo : 0.0f;  // no visible key: zeros
  const float inv_hi = sum_hi > 0.0f ? 1.0f / sum_hi : 0.0f;
#pragma unroll
  for (int d = 0; d < kDTiles; ++d) {
    const int col = d * 8 + quad * 2;
    if (row_lo < p.q_len) {
      *reinterpret_cast<decltype(MmaType<T>::ToPair(0, 0))*>(o + row_lo * kDim + col) =
          MmaType<T>::ToPair(out[d][0] * inv_lo, out[d][1] * inv_lo);
    }
    if (row_hi < p.q_len) {
      *reinterpret_cast<decltype(MmaType<T>::ToPair(0, 0))*>(o + row_hi * kDim + col) =
          MmaType<T>::ToPair(out[d][2] * inv_hi, out[d][3] * inv_hi);
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
