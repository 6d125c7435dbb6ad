// The GPU baseline's two cuBLASLt GEMMs of attention (CUDA builds only), shared by its dense and
// paged paths. Per KV head (the strided batch): Q is group * q_len consecutive rows of head_dim
// (GQA: the query heads of one KV head are adjacent), K and V are kv_len rows of
// `kv_row_stride` elements, `kv_head_stride` elements apart from one KV head to the next.
// Row-major S = Q K^T (fp32) is column-major S^T = K Q^T: A = K (transposed), B = Q; row-major
// O = P V is column-major O^T = V^T P^T: A = V, B = P, both as stored.
#pragma once

#include <cstdint>

#include "kernels/gemm.h"

namespace an1 {

struct BaselineGemms {
  kernels::GemmProblem qk, pv;
};

inline BaselineGemms MakeBaselineGemms(int64_t q_rows, int64_t kv_len, int64_t head_dim,
                                       int64_t kv_row_stride, int64_t kv_head_stride, int32_t batch,
                                       kernels::ElementType type) {
  BaselineGemms g;
  kernels::GemmProblem& qk = g.qk;
  qk.transpose_a = true;
  qk.m = kv_len;
  qk.n = q_rows;
  qk.k = head_dim;
  qk.lda = kv_row_stride;
  qk.ldb = head_dim;
  qk.ldc = kv_len;
  qk.stride_a = kv_head_stride;
  qk.stride_b = q_rows * head_dim;
  qk.stride_c = q_rows * kv_len;
  qk.batch = batch;
  qk.ab_type = type;
  qk.c_type = kernels::ElementType::kF32;
  kernels::GemmProblem& pv = g.pv;
  pv.m = head_dim;
  pv.n = q_rows;
  pv.k = kv_len;
  pv.lda = kv_row_stride;
  pv.ldb = kv_len;
  pv.ldc = head_dim;
  pv.stride_a = kv_head_stride;
  pv.stride_b = q_rows * kv_len;
  pv.stride_c = q_rows * head_dim;
  pv.batch = batch;
  pv.ab_type = type;
  pv.c_type = type;
  return g;
}

}  // namespace an1
