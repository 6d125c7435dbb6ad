// The GPU baseline's softmax: fp32 scores in, probabilities of the input dtype out, with the
// scale, an optional softcap and the causal mask and sliding window (bottom-right aligned,
// kernels/attention/common/causal.h) applied (CUDA builds only).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/gemm.h"
#include "kernels/kernel_status.h"

namespace an1::kernels {

struct MaskedSoftmaxParams {
  const float* scores = nullptr;  // rows x cols, row-major
  void* probs = nullptr;          // rows x cols, row-major, `probs_type` elements
  ElementType probs_type = ElementType::kF16;
  int64_t rows = 0;   // batch * heads * q_len
  int64_t cols = 0;   // kv_len
  int64_t q_len = 0;  // row r is query row r % q_len of its head
  bool causal = true;
  // FlashAttention's window_size: keys from position - window_left to position + window_right
  // (-1: unbounded on that side), position = i + cols - q_len.
  int window_left = -1, window_right = -1;
  float scale = 1.0f;
  // 0: off; else each scaled score s becomes softcap * tanh(s / softcap) (Gemma 2's logit
  // softcapping, FlashAttention's softcap).
  float softcap = 0.0f;
  // Optional device output of `rows` floats: each row's log-sum-exp of its final scores,
  // ln(sum_j exp(s_j)) over the keys it sees; -inf for a row that sees none.
  float* lse = nullptr;
};

// Row r, query i = r % q_len, sees the keys VisibleRange (causal.h) gives it: with no window,
// keys j < min(cols, i + cols - q_len + 1) when causal, all otherwise; a row that sees none is
// all zeros (and its lse -inf). Errors only if the launch fails.
KernelStatus LaunchMaskedSoftmax(const MaskedSoftmaxParams& params, cudaStream_t stream);

}  // namespace an1::kernels
