// Validation of attention and matmul requests against shapes, dtypes, byte counts and limits.
//
// Every function is pure and thread-safe. On success it returns the problem's dimensions; on
// failure an INVALID_ARGUMENT status whose message names the tensor and the dimension at fault,
// or RESOURCE_EXHAUSTED when a well-formed tensor exceeds the configured size limit.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/broadcast.h"
#include "engine/options.h"
#include "engine/status.h"
#include "engine/tensor.h"

namespace an1 {

struct AttentionDims {
  int64_t batch = 0;     // B
  int64_t heads = 0;     // H (query heads)
  int64_t kv_heads = 0;  // Hkv; H % Hkv == 0
  int64_t q_len = 0;     // Sq
  int64_t kv_len = 0;    // Sk
  int64_t head_dim = 0;  // D
};

struct AttentionInputs {
  TensorView q, k, v;
  bool causal = true;
  std::optional<float> scale;  // nullopt: 1/sqrt(D)
  // Also compute each query row's log-sum-exp, ln(sum_j exp(q_i . k_j * scale)) over the keys it
  // sees (-inf when it sees none), into `lse`: host memory of exactly B * H * Sq floats, (B, H, Sq)
  // row-major, owned by the caller like the output. Always host memory, wherever the output is.
  bool return_lse = false;
  std::span<float> lse;
};

struct ValidatedAttention {
  AttentionDims dims;
  DType dtype = DType::kFloat32;
  float scale = 1.0f;  // resolved
  TensorSpec output;   // (B, H, Sq, D)
  // With return_lse: fp32 (B, H, Sq); nullopt otherwise.
  std::optional<TensorSpec> lse;
};

// Validates shapes, dtypes, byte counts and limits. With return_lse, `lse` must have exactly
// B * H * Sq elements (INVALID_ARGUMENT otherwise); without it, `lse` must be empty.
StatusOr<ValidatedAttention> ValidateAttention(const AttentionInputs& inputs, const Limits& limits);

// The scale a request asks for (nullopt: 1/sqrt(head_dim)), checked: finite, scale x log2(e)
// finite in fp32 (the kernels work in the log2 domain), and for fp16 inputs, whose scores are
// at most head_dim x 65504^2 in magnitude, no score that the scale could take past fp32's range
// (such rows came out NaN). INVALID_ARGUMENT saying why otherwise. bf16 and fp32 inputs have no
// such bound short of reading them: their scaled scores must stay finite, or rows come out NaN.
StatusOr<float> ResolveScale(std::optional<float> scale, int64_t head_dim, DType dtype);

// B * H * Sq for a request whose q is `q`: the floats its LSE buffer needs, for sizing that
// buffer before the request is validated. 0 when q cannot be valid (not rank 4, a dimension
// below 1, fewer bytes than 2 per element): ValidateAttention then refuses the request anyway, so
// a malformed shape never sizes a large buffer.
std::size_t LseElements(const TensorView& q);
// The product of q's dimensions but the last, when q has rank `rank`, every dimension >= 1 and at
// least 2 bytes per element; else 0. LseElements (rank 4) and PagedLseElements (rank 3) share it.
std::size_t RowElementsBeforeLastDim(const TensorView& q, std::size_t rank);

// (..., m, k) @ (..., k, n); the batch dimensions broadcast as in NumPy.
struct MatmulDims {
  int64_t m = 0, k = 0, n = 0;
  BatchBroadcast batch;  // the batch dimensions of the output, a and b (broadcast.h)
};

struct ValidatedMatmul {
  MatmulDims dims;
  DType dtype = DType::kFloat32;
  TensorSpec output;
  bool allow_tf32 = false;  // fp32 operands may be rounded to TF32 on the GPU (asked per request)
};

StatusOr<ValidatedMatmul> ValidateMatmul(const TensorView& a, const TensorView& b,
                                         const Limits& limits);

}  // namespace an1
