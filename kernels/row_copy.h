// Indexed row copies on the GPU (CUDA builds only): the GPU baseline's paged attention moves
// rows with them between the layouts the wire uses (q packed by token, K/V in cache pages) and
// the dense per-sequence matrices its GEMMs take. A row is `row_bytes` contiguous bytes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/kernel_status.h"

namespace an1::kernels {

struct RowCopy {
  const void* src = nullptr;
  void* dst = nullptr;
  // Device array of `rows` row numbers (int32, each >= 0 and inside the tensor it indexes; the
  // caller checks them).
  const int32_t* index = nullptr;
  int64_t rows = 0;
  int64_t row_bytes = 0;
};

// dst row r = src row index[r], for r < rows (a gather).
KernelStatus LaunchGatherRows(const RowCopy& copy, cudaStream_t stream);
// dst row index[r] = src row r, for r < rows (a scatter; the indices must be distinct).
KernelStatus LaunchScatterRows(const RowCopy& copy, cudaStream_t stream);

}  // namespace an1::kernels
