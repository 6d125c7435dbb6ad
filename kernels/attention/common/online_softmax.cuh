// Pieces of the online softmax (FlashAttention's running max and sum) that every attention
// kernel shares. Scores live in the log2 domain: exp(s * scale) = exp2(s * scale * log2(e)).
#pragma once

namespace an1::kernels::attention {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// A score times the (positive) log2-domain scale, rounded on its own: never contracted into an
// FMA with the subtraction of the row max that follows. The max element's scaled score then
// equals the scaled max bit for bit and contributes exactly exp2(0) = 1 at any magnitude; an FMA
// would subtract the rounded max from the exact product, leaving the max's rounding error (about
// 1e4 at scores of 1e11) in the exponent: inf or 0 instead of 1.
__device__ __forceinline__ float ScaleScore(float score, float scale_log2) {
  return __fmul_rn(score, scale_log2);
}

// 2^x with the MUFU instruction alone (flush-to-zero; exp2f adds range fix-ups around it): the
// softmax calls it for every score, so it sits on the loop's critical path. 2^-inf = 0.
__device__ __forceinline__ float FastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The max of one row half (`half` 0 or 1) of a thread's m16n8 score tiles, as a tree rather than
// a chain: with two warps per scheduler, a chain of dependent instructions stalls on each link.
template <int kTiles>
__device__ __forceinline__ float TreeMax(const float (&score)[kTiles][4], int half) {
  float m[kTiles];
#pragma unroll
  for (int t = 0; t < kTiles; ++t) m[t] = fmaxf(score[t][half * 2], score[t][half * 2 + 1]);
#pragma unroll
  for (int width = kTiles / 2; width > 0; width /= 2) {
#pragma unroll
    for (int t = 0; t < width; ++t) m[t] = fmaxf(m[t], m[t + width]);
  }
  return m[0];
}

// Reduces a value over the 4 threads of a quad (the threads sharing one row of an mma tile).
template <typename Op>
__device__ __forceinline__ float QuadReduce(float x, Op op) {
#pragma unroll
  for (int offset = 1; offset < 4; offset <<= 1) x = op(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

// The natural-log log-sum-exp of a finished row: ln(sum_j exp(s_j * scale)), from the row's max
// raw score and its sum of exp2(scaled - scaled max). -inf for a row that saw no key.
__device__ __forceinline__ float RowLogSumExp(float row_max, float row_sum, float scale_log2) {
  if (row_sum <= 0.0f) return -INFINITY;
  return (ScaleScore(row_max, scale_log2) + __log2f(row_sum)) * kLn2;
}

}  // namespace an1::kernels::attention
