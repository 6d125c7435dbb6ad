// Coverage checks every attention kernel of this build shares (host code).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "kernels/attention/attention.h"

namespace an1::kernels::attention {

// Empty when the build's machine code runs on `device` and `params` has an element type the
// tensor-core kernels take; otherwise why not. The kernels are built for sm_90a only
// (kernels/CMakeLists.txt), and sm_90a code runs on compute capability 9.0 alone.
inline std::string CommonCoverage(const cudaDeviceProp& device, const AttentionParams& p) {
  if (device.major != 9 || device.minor != 0) {
    return "the an1 attention kernels are built for sm_90a (H100/H200); this GPU is sm_" +
           std::to_string(device.major) + std::to_string(device.minor);
  }
  if (p.dtype != ElementType::kF16 && p.dtype != ElementType::kBF16) {
    return "the an1 attention kernels take fp16 and bf16 (fp32 runs on the baseline)";
  }
  return "";
}

}  // namespace an1::kernels::attention
