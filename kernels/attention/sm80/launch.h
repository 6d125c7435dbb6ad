// The sm80 attention kernel's host side: coverage, and one launcher per compiled instantiation.
// The instantiations are listed once, in kernels/CMakeLists.txt, which generates their
// translation units and instances.inc (one AN1_SM80_INSTANCE(element, head_dim, causal, name)
// line each), so the list here, the dispatch and the build cannot drift apart.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/attention/attention.h"
#include "kernels/attention/common/paged_rows.h"

namespace an1::kernels::attention::sm80 {

// What the kernel receives: the caller's parameters and what the launcher derives from them.
// Paged, params.q / o are (total_q, heads, head_dim), params.k / v the caches, and params.q_len
// and kv_len are unused (each block reads its sequence's from `paged`).
struct KernelArgs {
  AttentionParams params;
  float scale_log2 = 0;         // params.scale * log2(e)
  int64_t heads_per_group = 1;  // block scheduling (common/scheduling.cuh)
  PagedRows paged;              // the paged source (common/paged_rows.h)
};

#define AN1_SM80_INSTANCE(ELEMENT, HEAD_DIM, CAUSAL, NAME) \
  KernelStatus Launch##NAME(const AttentionParams& params, cudaStream_t stream);
#include "kernels/attention/sm80/instances.inc"
#undef AN1_SM80_INSTANCE

// Empty when the sm80 kernel runs `params` on `device`; otherwise why not.
std::string Supported(const cudaDeviceProp& device, const AttentionParams& params);

// Launches the instantiation for params' dtype, head_dim and mask; kUnsupported when there is
// none (Supported says why before).
KernelStatus Run(const AttentionParams& params, cudaStream_t stream);

}  // namespace an1::kernels::attention::sm80
