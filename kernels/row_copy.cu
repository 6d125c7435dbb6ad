#include <cstddef>

#include "kernels/cuda_check.h"
#include "kernels/row_copy.h"

namespace an1::kernels {
namespace {

constexpr int kThreads = 128;

// One block per row, its threads striding over the row in units of `Unit` (the widest of 16, 8,
// 4, 2, 1 bytes that the row size and both base pointers allow).
template <typename Unit, bool kScatter>
__global__ void __launch_bounds__(kThreads) CopyRowsKernel(RowCopy c) {
  const int64_t r = blockIdx.x;
  const int64_t units = c.row_bytes / static_cast<int64_t>(sizeof(Unit));
  const int64_t src_row = kScatter ? r : c.index[r];
  const int64_t dst_row = kScatter ? c.index[r] : r;
  const Unit* src = static_cast<const Unit*>(c.src) + src_row * units;
  Unit* dst = static_cast<Unit*>(c.dst) + dst_row * units;
  for (int64_t u = threadIdx.x; u < units; u += kThreads) dst[u] = src[u];
}

template <bool kScatter>
KernelStatus Launch(const RowCopy& c, cudaStream_t stream) {
  if (c.rows < 0 || c.rows > 0x7fffffff || c.row_bytes <= 0) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "row copy: rows must be in [0, 2^31), row_bytes >= 1");
  }
  if (c.rows == 0) return KernelStatus::Ok();
  const auto bits = static_cast<uint64_t>(c.row_bytes) | reinterpret_cast<uintptr_t>(c.src) |
                    reinterpret_cast<uintptr_t>(c.dst);
  const dim3 grid(static_cast<unsigned>(c.rows));
  if (bits % 16 == 0) {
    CopyRowsKernel<uint4, kScatter><<<grid, kThreads, 0, stream>>>(c);
  } else if (bits % 8 == 0) {
    CopyRowsKernel<uint2, kScatter><<<grid, kThreads, 0, stream>>>(c);
  } else if (bits % 4 == 0) {
    CopyRowsKernel<uint32_t, kScatter><<<grid, kThreads, 0, stream>>>(c);
  } else if (bits % 2 == 0) {
    CopyRowsKernel<uint16_t, kScatter><<<grid, kThreads, 0, stream>>>(c);
  } else {
    CopyRowsKernel<unsigned char, kScatter><<<grid, kThreads, 0, stream>>>(c);
  }
  return FromCuda(cudaGetLastError(), "row copy launch");
}

}  // namespace

KernelStatus LaunchGatherRows(const RowCopy& copy, cudaStream_t stream) {
  return Launch<false>(copy, stream);
}

KernelStatus LaunchScatterRows(const RowCopy& copy, cudaStream_t stream) {
  return Launch<true>(copy, stream);
}

}  // namespace an1::kernels
