#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>

#include "kernels/cuda_check.h"
#include "kernels/masked_softmax.h"

namespace an1::kernels {
namespace {

constexpr int kThreads = 256;  // one block per row; 8 warps stream the row with coalesced loads
constexpr float kLog2e = 1.4426950408889634f;

template <typename T>
__device__ T FromFloat(float x);
template <>
__device__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Merges two (max, sum of exp2(x - max)) pairs.
__device__ void Combine(float& m, float& s, float m2, float s2) {
  const float m_new = fmaxf(m, m2);
  if (m_new == -INFINITY) return;  // both empty
  s = s * exp2f(m - m_new) + s2 * exp2f(m2 - m_new);
  m = m_new;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) MaskedSoftmaxKernel(MaskedSoftmaxParams p) {
  const int64_t row = blockIdx.x;
  const float* in = p.scores + row * p.cols;
  T* out = static_cast<T*>(p.probs) + row * p.cols;
  const int64_t i = row % p.q_len;
  int64_t visible = p.cols;
  if (p.causal) {
    const int64_t limit = i + p.cols - p.q_len + 1;
    visible = limit < 0 ? 0 : (limit < p.cols ? limit : p.cols);
  }
  const float scale_log2 = p.scale * kLog2e;  // exp(s * scale) == exp2(s * scale * log2 e)

  // Pass 1: online max and sum over this thread's columns.
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = threadIdx.x; j < visible; j += kThreads) {
    const float x = in[j] * scale_log2;
    Combine(m, s, x, 1.0f);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    Combine(m, s, m2, s2);
  }
  __shared__ float warp_m[kThreads / 32], warp_s[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  m = warp_m[0];
  s = warp_s[0];
  for (int w = 1; w < kThreads / 32; ++w) Combine(m, s, warp_m[w], warp_s[w]);
  const float inv_sum = s > 0.0f ? 1.0f / s : 0.0f;

  // Pass 2: write probabilities, zeros past the visible keys.
  for (int64_t j = threadIdx.x; j < p.cols; j += kThreads) {
    const float prob = j < visible ? exp2f(in[j] * scale_log2 - m) * inv_sum : 0.0f;
    out[j] = FromFloat<T>(prob);
  }
}

}  // namespace

KernelStatus LaunchMaskedSoftmax(const MaskedSoftmaxParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0 || p.q_len <= 0 || p.rows > 0x7fffffff) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "masked softmax: rows must be in [1, 2^31), cols and q_len >= 1");
  }
  const dim3 grid(static_cast<unsigned>(p.rows));
  switch (p.probs_type) {
    case ElementType::kF32:
      MaskedSoftmaxKernel<float><<<grid, kThreads, 0, stream>>>(p);
      break;
    case ElementType::kF16:
      MaskedSoftmaxKernel<__half><<<grid, kThreads, 0, stream>>>(p);
      break;
    case ElementType::kBF16:
      MaskedSoftmaxKernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(p);
      break;
    default:
      return KernelStatus::Error(KernelStatus::Kind::kUnsupported, "masked softmax: bad type");
  }
  return FromCuda(cudaGetLastError(), "masked softmax launch");
}

}  // namespace an1::kernels
