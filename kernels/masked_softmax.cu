#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>

#include "kernels/attention/common/causal.h"
#include "kernels/attention/common/online_softmax.cuh"
#include "kernels/cuda_check.h"
#include "kernels/masked_softmax.h"

namespace an1::kernels {
namespace {

constexpr int kThreads = 256;
using attention::kLn2;
using attention::kLog2e;
using attention::ScaleScore;

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

constexpr int kRowsPerBlock = kThreads / 32;  // one warp per row

// Lane 0 writes the row's natural-log log-sum-exp from its (max, sum of exp2(x - max)) pair in
// the log2 domain of the scaled scores; -inf for a row that saw no key (sum 0).
__device__ void WriteLse(const MaskedSoftmaxParams& p, int64_t row, int lane, float m, float s) {
  if (p.lse == nullptr || lane != 0) return;
  p.lse[row] = s > 0.0f ? (m + log2f(s)) * kLn2 : -INFINITY;
}

// The keys [*first, *end) row `row` (of rows = batch x heads x q_len) sees.
__device__ void VisibleKeysOfRow(const MaskedSoftmaxParams& p, int64_t row, int64_t* first,
                                 int64_t* end) {
  attention::VisibleRange<int64_t>(row % p.q_len, p.q_len, p.cols, p.causal, p.window_left,
                                   p.window_right, first, end);
}

// A raw score as the softmax uses it: scaled, softcapped, in the log2 domain (exp(s) ==
// exp2(s * log2 e)). Without a softcap, one multiply by scale * log2 e.
__device__ float FinalScore(const MaskedSoftmaxParams& p, float scale_log2, float score) {
  if (p.softcap > 0.0f) return p.softcap * tanhf(score * p.scale / p.softcap) * kLog2e;
  return ScaleScore(score, scale_log2);
}

// One warp per row: reductions stay in registers (no block barrier), and each block covers
// eight rows, so that even short rows keep the memory system busy. The row is read twice (the
// second read mostly hits L1/L2); with kVec4 (cols divisible by 4) loads are 16 bytes wide.
template <typename T, bool kVec4>
__global__ void __launch_bounds__(kThreads) MaskedSoftmaxKernel(MaskedSoftmaxParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= p.rows) return;
  const float* in = p.scores + row * p.cols;
  T* out = static_cast<T*>(p.probs) + row * p.cols;
  int64_t first = 0, end = 0;
  VisibleKeysOfRow(p, row, &first, &end);
  const float scale_log2 = p.scale * kLog2e;  // exp(s * scale) == exp2(s * scale * log2 e)

  // Pass 1: online max and sum (in the log2 domain) over this lane's columns.
  float m = -INFINITY, s = 0.0f;
  if constexpr (kVec4) {  // whole float4s from first rounded up to end rounded down
    const int64_t vec_first = (first + 3) / 4, vec_end = end / 4;
    for (int64_t c = vec_first + lane; c < vec_end; c += 32) {
      const float4 x = reinterpret_cast<const float4*>(in)[c];
      Combine(m, s, FinalScore(p, scale_log2, x.x), 1.0f);
      Combine(m, s, FinalScore(p, scale_log2, x.y), 1.0f);
      Combine(m, s, FinalScore(p, scale_log2, x.z), 1.0f);
      Combine(m, s, FinalScore(p, scale_log2, x.w), 1.0f);
    }
    const int64_t head_end = vec_first * 4 < end ? vec_first * 4 : end;
    for (int64_t j = first + lane; j < head_end; j += 32)
      Combine(m, s, FinalScore(p, scale_log2, in[j]), 1.0f);
    const int64_t tail = vec_end * 4 > head_end ? vec_end * 4 : head_end;
    for (int64_t j = tail + lane; j < end; j += 32)
      Combine(m, s, FinalScore(p, scale_log2, in[j]), 1.0f);
  } else {
    for (int64_t j = first + lane; j < end; j += 32)
      Combine(m, s, FinalScore(p, scale_log2, in[j]), 1.0f);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    Combine(m, s, m2, s2);
  }
  const float inv_sum = s > 0.0f ? 1.0f / s : 0.0f;
  WriteLse(p, row, lane, m, s);

  // Pass 2: write probabilities, zeros outside the visible keys.
  for (int64_t j = lane; j < p.cols; j += 32) {
    const bool visible = j >= first && j < end;
    const float prob = visible ? exp2f(FinalScore(p, scale_log2, in[j]) - m) * inv_sum : 0.0f;
    out[j] = FromFloat<T>(prob);
  }
}

// Rows of up to 128 * kVecsPerLane scores (cols divisible by 4): one warp per row with the
// row held in registers, so the fp32 scores are read exactly once.
template <typename T, int kVecsPerLane>
__global__ void __launch_bounds__(kThreads) RegisterSoftmaxKernel(MaskedSoftmaxParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= p.rows) return;
  const float4* in = reinterpret_cast<const float4*>(p.scores + row * p.cols);
  T* out = static_cast<T*>(p.probs) + row * p.cols;
  int64_t first = 0, end = 0;
  VisibleKeysOfRow(p, row, &first, &end);
  const float scale_log2 = p.scale * kLog2e;

  float x[kVecsPerLane][4];
  float m = -INFINITY, s = 0.0f;
#pragma unroll
  for (int t = 0; t < kVecsPerLane; ++t) {
    const int64_t j = (lane + t * 32) * 4;
    float4 v = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    if (j < end && j + 3 >= first) v = in[lane + t * 32];
    const auto final_score = [&](int e, float raw) {
      return j + e >= first && j + e < end ? FinalScore(p, scale_log2, raw) : -INFINITY;
    };
    x[t][0] = final_score(0, v.x);
    x[t][1] = final_score(1, v.y);
    x[t][2] = final_score(2, v.z);
    x[t][3] = final_score(3, v.w);
#pragma unroll
    for (int e = 0; e < 4; ++e) Combine(m, s, x[t][e], 1.0f);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    Combine(m, s, m2, s2);
  }
  const float inv_sum = s > 0.0f ? 1.0f / s : 0.0f;
  WriteLse(p, row, lane, m, s);
#pragma unroll
  for (int t = 0; t < kVecsPerLane; ++t) {
    const int64_t j = (lane + t * 32) * 4;
    if (j >= p.cols) break;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float prob = x[t][e] == -INFINITY ? 0.0f : exp2f(x[t][e] - m) * inv_sum;
      out[j + e] = FromFloat<T>(prob);
    }
  }
}

template <typename T>
void Launch(const MaskedSoftmaxParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.rows + kRowsPerBlock - 1) / kRowsPerBlock));
  if (p.cols % 4 == 0 && p.cols <= 512) {  // every row starts 16-byte aligned
    RegisterSoftmaxKernel<T, 4><<<grid, kThreads, 0, stream>>>(p);
  } else if (p.cols % 4 == 0 && p.cols <= 2048) {
    RegisterSoftmaxKernel<T, 16><<<grid, kThreads, 0, stream>>>(p);
  } else if (p.cols % 4 == 0) {
    MaskedSoftmaxKernel<T, true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    MaskedSoftmaxKernel<T, false><<<grid, kThreads, 0, stream>>>(p);
  }
}

}  // namespace

KernelStatus LaunchMaskedSoftmax(const MaskedSoftmaxParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0 || p.q_len <= 0 || p.rows > 0x7fffffff) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                               "masked softmax: rows must be in [1, 2^31), cols and q_len >= 1");
  }
  switch (p.probs_type) {
    case ElementType::kF32:
      Launch<float>(p, stream);
      break;
    case ElementType::kF16:
      Launch<__half>(p, stream);
      break;
    case ElementType::kBF16:
      Launch<__nv_bfloat16>(p, stream);
      break;
    default:
      return KernelStatus::Error(KernelStatus::Kind::kUnsupported, "masked softmax: bad type");
  }
  return FromCuda(cudaGetLastError(), "masked softmax launch");
}

}  // namespace an1::kernels
