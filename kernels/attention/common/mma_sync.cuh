// Building blocks of the mma.sync (sm_80 and later) attention kernels: shared-memory addresses,
// ldmatrix, mma.sync m16n8k16 with fp32 accumulators, cp.async tile loads. Device code only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace an1::kernels::attention {

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
// rows at or past `rows` read as zeros (the kRows-row tile may be smaller than one pass). Thread t
// copies the 16-byte chunks t, t + kThreads, ... (fully unrolled: each thread's column and first
// row are fixed, the rest are constants).
template <int kRows, int kDim, int kThreads, int kPad, typename T>
__device__ __forceinline__ void LoadTile(T* smem, const T* global, int row0, int rows) {
  constexpr int kChunksPerRow = kDim / 8;  // 8 elements = 16 bytes
  constexpr int kRowsPerPass = kThreads / kChunksPerRow;
  static_assert(kThreads % kChunksPerRow == 0);
  constexpr bool kWhole = kRows % kRowsPerPass == 0;  // else the last pass is partial
  const int first = threadIdx.x / kChunksPerRow, col = (threadIdx.x % kChunksPerRow) * 8;
#pragma unroll
  for (int pass = 0; pass < (kRows + kRowsPerPass - 1) / kRowsPerPass; ++pass) {
    const int r = first + pass * kRowsPerPass;
    if (!kWhole && r >= kRows) break;
    const bool valid = row0 + r < rows;
    const T* src = global + (valid ? int64_t{row0 + r} * kDim + col : 0);
    CopyAsync16(smem + r * (kDim + kPad) + col, src, valid);
  }
}

// As LoadTile, for rows anywhere in memory: row r of the tile is copied from row(r) (kDim
// contiguous elements, 16-byte aligned), or zero-filled where row(r) is null (reading nothing:
// `anywhere`, any valid address, stands in as the copy's source).
template <int kRows, int kDim, int kThreads, int kPad, typename T, typename RowAddress>
__device__ __forceinline__ void LoadRows(T* smem, RowAddress row, const T* anywhere) {
  constexpr int kChunksPerRow = kDim / 8;
  constexpr int kRowsPerPass = kThreads / kChunksPerRow;
  static_assert(kThreads % kChunksPerRow == 0);
  constexpr bool kWhole = kRows % kRowsPerPass == 0;
  const int first = threadIdx.x / kChunksPerRow, col = (threadIdx.x % kChunksPerRow) * 8;
#pragma unroll
  for (int pass = 0; pass < (kRows + kRowsPerPass - 1) / kRowsPerPass; ++pass) {
    const int r = first + pass * kRowsPerPass;
    if (!kWhole && r >= kRows) break;
    const T* src = row(r);
    CopyAsync16(smem + r * (kDim + kPad) + col, src != nullptr ? src + col : anywhere,
                src != nullptr);
  }
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

}  // namespace an1::kernels::attention
