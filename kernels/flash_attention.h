// The an1 fused attention kernel (FlashAttention-2 style, CUDA builds only): softmax(Q K^T *
// scale + mask) V in one pass per query block, never materialising the scores. Tensor cores
// through mma.sync m16n8k16 fed by ldmatrix; K/V tiles through cp.async; softmax statistics and
// the output accumulated in fp32; exp2 with the scale folded in.
//
// Coverage: fp16 and bf16; head_dim 64 and 128; causal (bottom-right when Sq != Sk, blocks above
// the diagonal skipped) and not; any Sq, Sk >= 1; GQA/MQA; any batch x heads. A row that sees no
// key gets zeros. Everything else: kUnsupported, checked before any launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/gemm.h"
#include "kernels/kernel_status.h"

namespace an1::kernels {

// The whole host/kernel interface. Tensors are row-major and contiguous: q and o
// (batch, heads, q_len, head_dim), k and v (batch, kv_heads, kv_len, head_dim).
struct FlashAttentionParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  int64_t batch = 0, heads = 0, kv_heads = 0, q_len = 0, kv_len = 0;
  float scale_log2 = 0;         // softmax scale times log2(e)
  int64_t heads_per_group = 0;  // block scheduling, set by the launcher (flash_kernel.cuh)
};

// Empty when the kernel covers this problem; otherwise why not.
std::string FlashAttentionUnsupported(ElementType type, int64_t head_dim);

KernelStatus LaunchFlashAttention(const FlashAttentionParams& params, ElementType type,
                                  int64_t head_dim, bool causal, cudaStream_t stream);

}  // namespace an1::kernels
