#include "kernels/flash_attention.h"

#include "kernels/flash/instances.h"

namespace an1::kernels {

std::string FlashAttentionUnsupported(ElementType type, int64_t head_dim) {
  if (type != ElementType::kF16 && type != ElementType::kBF16) {
    return "the an1 attention kernel takes fp16 and bf16 (fp32 runs on the baseline)";
  }
  if (head_dim != 64 && head_dim != 128) {
    return "the an1 attention kernel takes head_dim 64 or 128, not " + std::to_string(head_dim);
  }
  return "";
}

KernelStatus LaunchFlashAttention(const FlashAttentionParams& params, ElementType type,
                                  int64_t head_dim, bool causal, cudaStream_t stream) {
  // Validate first, then dispatch; every path not listed ends in the error branch.
  if (std::string why = FlashAttentionUnsupported(type, head_dim); !why.empty()) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported, why);
  }
  if (params.batch < 1 || params.heads < 1 || params.kv_heads < 1 || params.q_len < 1 ||
      params.kv_len < 1 || params.heads % params.kv_heads != 0) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported, "flash attention: bad shape");
  }
  const bool fp16 = type == ElementType::kF16;
  switch (head_dim) {
    case 64:
      if (fp16)
        return causal ? flash::LaunchFp16D64Causal(params, stream)
                      : flash::LaunchFp16D64Dense(params, stream);
      return causal ? flash::LaunchBf16D64Causal(params, stream)
                    : flash::LaunchBf16D64Dense(params, stream);
    case 128:
      if (fp16)
        return causal ? flash::LaunchFp16D128Causal(params, stream)
                      : flash::LaunchFp16D128Dense(params, stream);
      return causal ? flash::LaunchBf16D128Causal(params, stream)
                    : flash::LaunchBf16D128Dense(params, stream);
    default:
      break;
  }
  return KernelStatus::Error(KernelStatus::Kind::kUnsupported, "flash attention: no instance");
}

}  // namespace an1::kernels
