#include "kernels/flash/flash_kernel.cuh"
#include "kernels/flash/instances.h"

namespace an1::kernels::flash {

KernelStatus LaunchFp16D128Dense(const FlashAttentionParams& params, cudaStream_t stream) {
  return Launch<__half, 128, false>(params, stream);
}

}  // namespace an1::kernels::flash
