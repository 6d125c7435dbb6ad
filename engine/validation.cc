#include "engine/validation.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "engine/tensor_checks.h"

namespace an1 {

StatusOr<ValidatedAttention> ValidateAttention(const AttentionInputs& in, const Limits& limits) {
  AN1_RETURN_IF_ERROR(CheckRank("q", in.q, 4, "(batch, heads, seq_len, head_dim)"));
  AN1_RETURN_IF_ERROR(CheckRank("k", in.k, 4, "(batch, kv_heads, kv_seq_len, head_dim)"));
  AN1_RETURN_IF_ERROR(CheckRank("v", in.v, 4, "(batch, kv_heads, kv_seq_len, head_dim)"));
  AN1_RETURN_IF_ERROR(CheckFloatDType("q", in.q));
  AN1_RETURN_IF_ERROR(CheckSameDType("k", in.k, "q", in.q.dtype));
  AN1_RETURN_IF_ERROR(CheckSameDType("v", in.v, "q", in.q.dtype));
  AN1_RETURN_IF_ERROR(CheckTensor("q", in.q, limits));
  AN1_RETURN_IF_ERROR(CheckTensor("k", in.k, limits));
  AN1_RETURN_IF_ERROR(CheckTensor("v", in.v, limits));

  AttentionDims d;
  d.batch = in.q.shape[0];
  d.heads = in.q.shape[1];
  d.q_len = in.q.shape[2];
  d.head_dim = in.q.shape[3];
  d.kv_heads = in.k.shape[1];
  d.kv_len = in.k.shape[2];
  AN1_RETURN_IF_ERROR(CheckDimEqual("k batch (k.shape[0])", in.k.shape[0], d.batch));
  AN1_RETURN_IF_ERROR(CheckDimEqual("v batch (v.shape[0])", in.v.shape[0], d.batch));
  AN1_RETURN_IF_ERROR(CheckDimEqual("k head_dim (k.shape[3])", in.k.shape[3], d.head_dim));
  AN1_RETURN_IF_ERROR(CheckDimEqual("v head_dim (v.shape[3])", in.v.shape[3], d.head_dim));
  AN1_RETURN_IF_ERROR(CheckDimEqual("v kv_heads (v.shape[1])", in.v.shape[1], d.kv_heads));
  AN1_RETURN_IF_ERROR(CheckDimEqual("v kv_seq_len (v.shape[2])", in.v.shape[2], d.kv_len));
  if (d.heads % d.kv_heads != 0) {
    return InvalidArgumentError("q heads (" + std::to_string(d.heads) +
                                ") must be a multiple of k/v heads (" + std::to_string(d.kv_heads) +
                                ") for grouped-query attention");
  }

  ValidatedAttention out;
  out.dims = d;
  out.dtype = in.q.dtype;
  StatusOr<float> scale = ResolveScale(in.scale, d.head_dim, in.q.dtype);
  if (!scale.ok()) return scale.status();
  out.scale = *scale;
  out.output = TensorSpec{in.q.dtype, in.q.shape, in.q.data.size()};
  // B * H * Sq cannot overflow: q's B * H * Sq * D elements fit in its byte count.
  const auto lse_elements = static_cast<std::size_t>(d.batch * d.heads * d.q_len);
  if (in.return_lse) {
    if (in.lse.size() != lse_elements) {
      return InvalidArgumentError("the lse buffer has " + std::to_string(in.lse.size()) +
                                  " elements; (batch, heads, seq_len) needs " +
                                  std::to_string(lse_elements));
    }
    out.lse = TensorSpec{DType::kFloat32, {d.batch, d.heads, d.q_len}, lse_elements * 4};
  } else if (!in.lse.empty()) {
    return InvalidArgumentError("an lse buffer was given but return_lse is not set");
  }
  return out;
}

namespace {

// A number in 6 significant digits ("3e+38", not std::to_string's 39 digits).
std::string Short(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

}  // namespace

StatusOr<float> ResolveScale(std::optional<float> scale, int64_t head_dim, DType dtype) {
  if (!scale.has_value()) return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  if (!std::isfinite(*scale)) return InvalidArgumentError("scale must be a finite number");
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kFloatMax = 3.4028234663852886e38;
  const double magnitude = std::fabs(static_cast<double>(*scale)) * kLog2e;
  if (magnitude > kFloatMax) {
    return InvalidArgumentError("scale " + Short(*scale) +
                                " is too large: scale x log2(e) overflows fp32");
  }
  if (dtype == DType::kFloat16) {
    const double largest_score = static_cast<double>(head_dim) * 65504.0 * 65504.0;
    if (magnitude * largest_score > kFloatMax) {
      return InvalidArgumentError("scale " + Short(*scale) +
                                  " is too large for fp16 inputs: a score of up to " +
                                  Short(largest_score) +
                                  " (head_dim x 65504^2) times it overflows fp32; |scale| "
                                  "may be at most " +
                                  Short(kFloatMax / (largest_score * kLog2e)));
    }
  }
  return *scale;
}

std::size_t RowElementsBeforeLastDim(const TensorView& q, std::size_t rank) {
  if (q.shape.size() != rank) return 0;
  uint64_t elements = 1;
  for (std::size_t i = 0; i + 1 < rank; ++i) {
    if (q.shape[i] < 1 ||
        __builtin_mul_overflow(elements, static_cast<uint64_t>(q.shape[i]), &elements)) {
      return 0;
    }
  }
  // A valid q holds those rows times the last dimension, in elements of at least 2 bytes each.
  if (q.shape[rank - 1] < 1 || elements > q.data.size() / 2) return 0;
  return static_cast<std::size_t>(elements);
}

std::size_t LseElements(const TensorView& q) { return RowElementsBeforeLastDim(q, 4); }

StatusOr<ValidatedMatmul> ValidateMatmul(const TensorView& a, const TensorView& b,
                                         const Limits& limits) {
  for (const auto& [name, t] : {std::pair<const char*, const TensorView&>{"a", a}, {"b", b}}) {
    if (t.shape.size() < 2 || t.shape.size() > static_cast<std::size_t>(limits.max_rank)) {
      return InvalidArgumentError(std::string(name) + " must have rank 2 to " +
                                  std::to_string(limits.max_rank) +
                                  " (..., rows, cols), got shape " + ShapeToString(t.shape));
    }
  }
  AN1_RETURN_IF_ERROR(CheckFloatDType("a", a));
  AN1_RETURN_IF_ERROR(CheckSameDType("b", b, "a", a.dtype));
  AN1_RETURN_IF_ERROR(CheckTensor("a", a, limits));
  AN1_RETURN_IF_ERROR(CheckTensor("b", b, limits));

  MatmulDims d;
  d.m = a.shape[a.shape.size() - 2];
  d.k = a.shape.back();
  d.n = b.shape.back();
  const int64_t b_rows = b.shape[b.shape.size() - 2];
  if (b_rows != d.k) {
    return InvalidArgumentError("inner dimensions differ: a " + ShapeToString(a.shape) + " @ b " +
                                ShapeToString(b.shape) + " needs a.shape[-1] == b.shape[-2]");
  }
  std::optional<BatchBroadcast> batch =
      BroadcastBatch({a.shape.begin(), a.shape.end() - 2}, {b.shape.begin(), b.shape.end() - 2});
  if (!batch) {
    return InvalidArgumentError("batch dimensions do not broadcast: a " + ShapeToString(a.shape) +
                                " @ b " + ShapeToString(b.shape));
  }
  d.batch = std::move(*batch);

  ValidatedMatmul out;
  out.dtype = a.dtype;
  out.output.dtype = a.dtype;
  out.output.shape = d.batch.shape;
  out.output.shape.push_back(d.m);
  out.output.shape.push_back(d.n);
  StatusOr<std::size_t> out_bytes = ByteSizeOf("output", a.dtype, out.output.shape);
  if (!out_bytes.ok()) return out_bytes.status();
  AN1_RETURN_IF_ERROR(CheckWithinLimit("the output", *out_bytes, limits));
  out.output.byte_size = *out_bytes;
  out.dims = std::move(d);
  return out;
}

}  // namespace an1
