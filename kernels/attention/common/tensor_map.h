// TMA tensor maps of the attention kernels' 16-bit tensors, seen as (matrices, rows, head_dim)
// row-major: q and o as (batch x heads, seq, head_dim), k and v as (batch x kv_heads, kv_len,
// head_dim), the (B, H, S, D) layout. cuTensorMapEncodeTiled is a driver function, reached
// through the runtime's cudaGetDriverEntryPointByVersion, so nothing links libcuda and binaries
// still start on hosts without a driver.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "kernels/attention/attention.h"

namespace an1::kernels::attention {

// Columns of one TMA box: 64 16-bit elements, the 128 bytes of the 128-byte swizzle. A row of
// head_dim 128 takes two boxes.
inline constexpr uint32_t kTmaBoxColumns = 64;

// Fills `map` for the tensor at `base` (16-byte aligned; head_dim x 2 bytes a multiple of 16),
// read or written in boxes of kTmaBoxColumns columns x `box_rows` rows (at most 256) with the
// 128-byte swizzle; elements outside the tensor load as zeros and are not stored. kInternal,
// naming `kernel`, when the driver has no cuTensorMapEncodeTiled or refuses the map.
// `l2_promotion_bytes` (0, 64, 128 or 256): the L2 line size a box's reads are promoted to.
KernelStatus EncodeRowTiles(const char* kernel, CUtensorMap* map, ElementType dtype,
                            const void* base, int64_t head_dim, int64_t rows, int64_t matrices,
                            uint32_t box_rows, int l2_promotion_bytes = 256);

// The general form: a 3-D tensor of 16-bit elements with `dims` (innermost first, dims[0]
// contiguous), byte strides of dims 1 and 2 (multiples of 16), boxes of `box` elements (box[0] =
// kTmaBoxColumns), the 128-byte swizzle. EncodeRowTiles is this with dims (head_dim, rows,
// matrices). Same errors.
KernelStatus EncodeTiles3d(const char* kernel, CUtensorMap* map, ElementType dtype,
                           const void* base, const int64_t (&dims)[3],
                           const int64_t (&stride_bytes)[2], const uint32_t (&box)[3],
                           int l2_promotion_bytes = 256);

}  // namespace an1::kernels::attention
