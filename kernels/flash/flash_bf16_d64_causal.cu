#include "kernels/flash/flash_kernel.cuh"
#include "kernels/flash/instances.h"

namespace an1::kernels::flash {

KernelStatus LaunchBf16D64Causal(const FlashAttentionParams& params, cudaStream_t stream) {
  return Launch<__nv_bfloat16, 64, true>(params, stream);
}

}  // namespace an1::kernels::flash
