// One launcher per compiled instantiation of the fused attention kernel; each is defined in its
// own translation unit (flash_<dtype>_d<head_dim>_<causal|dense>.cu), so builds stay parallel.
#pragma once

#include "kernels/flash_attention.h"

namespace an1::kernels::flash {

#define AN1_FLASH_INSTANCE(name) \
  KernelStatus name(const FlashAttentionParams& params, cudaStream_t stream);
AN1_FLASH_INSTANCE(LaunchFp16D64Causal)
AN1_FLASH_INSTANCE(LaunchFp16D64Dense)
AN1_FLASH_INSTANCE(LaunchFp16D128Causal)
AN1_FLASH_INSTANCE(LaunchFp16D128Dense)
AN1_FLASH_INSTANCE(LaunchBf16D64Causal)
AN1_FLASH_INSTANCE(LaunchBf16D64Dense)
AN1_FLASH_INSTANCE(LaunchBf16D128Causal)
AN1_FLASH_INSTANCE(LaunchBf16D128Dense)
#undef AN1_FLASH_INSTANCE

}  // namespace an1::kernels::flash
