// Double-precision reference implementations and helpers shared by the tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/dtype.h"

namespace an1::testing {

struct AttentionCase {
  int64_t batch, heads, kv_heads, q_len, kv_len, head_dim;
};

// softmax(q k^T * scale + bottom-right causal mask) v, in double. Fully masked rows give 0.
inline std::vector<double> ReferenceAttention(const AttentionCase& c, const std::vector<float>& q,
                                              const std::vector<float>& k,
                                              const std::vector<float>& v, bool causal,
                                              double scale) {
  std::vector<double> out(q.size(), 0.0);
  const int64_t group = c.heads / c.kv_heads;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      const int64_t kvh = h / group;
      for (int64_t i = 0; i < c.q_len; ++i) {
        const int64_t visible =
            causal ? std::clamp<int64_t>(i + c.kv_len - c.q_len + 1, 0, c.kv_len) : c.kv_len;
        if (visible == 0) continue;
        const float* qi = &q[((b * c.heads + h) * c.q_len + i) * c.head_dim];
        std::vector<double> s(visible);
        double max_s = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          const float* kj = &k[((b * c.kv_heads + kvh) * c.kv_len + j) * c.head_dim];
          double dot = 0;
          for (int64_t x = 0; x < c.head_dim; ++x) dot += double(qi[x]) * kj[x];
          s[j] = dot * scale;
          max_s = std::max(max_s, s[j]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - max_s));
        double* o = &out[((b * c.heads + h) * c.q_len + i) * c.head_dim];
        for (int64_t j = 0; j < visible; ++j) {
          const float* vj = &v[((b * c.kv_heads + kvh) * c.kv_len + j) * c.head_dim];
          for (int64_t x = 0; x < c.head_dim; ++x) o[x] += s[j] / sum * vj[x];
        }
      }
    }
  }
  return out;
}

// Each query row's log-sum-exp, ln(sum_j exp(q_i . k_j * scale)) over the keys it sees (bottom-
// right causal mask), in double: (B, H, Sq); -inf for a row that sees no key.
inline std::vector<double> ReferenceLse(const AttentionCase& c, const std::vector<float>& q,
                                        const std::vector<float>& k, bool causal, double scale) {
  std::vector<double> out(static_cast<std::size_t>(c.batch * c.heads * c.q_len), -INFINITY);
  const int64_t group = c.heads / c.kv_heads;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t i = 0; i < c.q_len; ++i) {
        const int64_t visible =
            causal ? std::clamp<int64_t>(i + c.kv_len - c.q_len + 1, 0, c.kv_len) : c.kv_len;
        if (visible == 0) continue;
        const float* qi = &q[((b * c.heads + h) * c.q_len + i) * c.head_dim];
        std::vector<double> s(visible);
        for (int64_t j = 0; j < visible; ++j) {
          const float* kj = &k[((b * c.kv_heads + h / group) * c.kv_len + j) * c.head_dim];
          double dot = 0;
          for (int64_t x = 0; x < c.head_dim; ++x) dot += double(qi[x]) * kj[x];
          s[j] = dot * scale;
        }
        const double max_s = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double x : s) sum += std::exp(x - max_s);
        out[(b * c.heads + h) * c.q_len + i] = max_s + std::log(sum);
      }
    }
  }
  return out;
}

// Empty when `got` matches `want` row by row: -inf exactly where want is -inf, elsewhere finite
// and within atol + rtol * |want|; otherwise the first row that does not, in words.
inline std::string CompareLse(const std::vector<float>& got, const std::vector<double>& want,
                              double atol, double rtol) {
  if (got.size() != want.size()) {
    return "got " + std::to_string(got.size()) + " rows, want " + std::to_string(want.size());
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    const bool ok = std::isinf(want[i])
                        ? got[i] == -INFINITY
                        : std::isfinite(got[i]) && std::fabs(double(got[i]) - want[i]) <=
                                                       atol + rtol * std::fabs(want[i]);
    if (!ok) {
      char text[128];
      std::snprintf(text, sizeof(text), "row %zu: got %.9g, want %.9g", i, double(got[i]), want[i]);
      return text;
    }
  }
  return "";
}

// a (batch..., m, k) @ b (batch..., k, n) with NumPy broadcasting, in double.
inline std::vector<double> ReferenceMatmul(const std::vector<int64_t>& a_shape,
                                           const std::vector<float>& a,
                                           const std::vector<int64_t>& b_shape,
                                           const std::vector<float>& b,
                                           std::vector<int64_t>* out_shape) {
  const int64_t m = a_shape[a_shape.size() - 2], k = a_shape.back(), n = b_shape.back();
  const std::size_t rank = std::max(a_shape.size(), b_shape.size()) - 2;
  std::vector<int64_t> ab(rank, 1), bb(rank, 1), ob(rank);
  std::copy(a_shape.begin(), a_shape.end() - 2, ab.end() - (a_shape.size() - 2));
  std::copy(b_shape.begin(), b_shape.end() - 2, bb.end() - (b_shape.size() - 2));
  int64_t batches = 1;
  for (std::size_t i = 0; i < rank; ++i) batches *= (ob[i] = std::max(ab[i], bb[i]));
  *out_shape = ob;
  out_shape->push_back(m);
  out_shape->push_back(n);
  std::vector<double> out(static_cast<std::size_t>(batches * m * n), 0.0);
  for (int64_t t = 0; t < batches; ++t) {
    // Row-major decomposition of t over ob, then re-composition over ab and bb.
    int64_t rem = t, ai = 0, bi = 0, as = 1, bs = 1;
    for (std::size_t d = rank; d-- > 0;) {
      const int64_t coord = rem % ob[d];
      rem /= ob[d];
      ai += (ab[d] == 1 ? 0 : coord) * as;
      bi += (bb[d] == 1 ? 0 : coord) * bs;
      as *= ab[d];
      bs *= bb[d];
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t x = 0; x < k; ++x)
          acc += double(a[(ai * m + i) * k + x]) * b[(bi * k + x) * n + j];
        out[(t * m + i) * n + j] = acc;
      }
  }
  return out;
}

// max |got - want| / max |want| (or the absolute error when want is all zeros).
inline double RelativeError(const std::vector<float>& got, const std::vector<double>& want) {
  double max_err = 0, max_ref = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    max_err = std::max(max_err, std::fabs(double(got[i]) - want[i]));
    max_ref = std::max(max_ref, std::fabs(want[i]));
  }
  return max_ref > 0 ? max_err / max_ref : max_err;
}

inline std::vector<float> RandomFloats(std::size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& x : out) x = normal(rng);
  return out;
}

// Random values rounded to `dtype`, as bytes and as the floats they represent.
struct Encoded {
  std::vector<std::byte> bytes;
  std::vector<float> values;
};

inline Encoded Encode(std::size_t n, DType dtype, std::mt19937_64& rng) {
  Encoded e;
  std::vector<float> raw = RandomFloats(n, rng);
  e.bytes.resize(n * DTypeSize(dtype));
  ConvertFromFloat(dtype, raw.data(), n, e.bytes.data());
  e.values.resize(n);
  ConvertToFloat(dtype, e.bytes.data(), n, e.values.data());
  return e;
}

// Inputs whose scores are huge but whose softmax is known exactly: q is `magnitude` everywhere,
// every key row is +magnitude or -magnitude throughout (random signs), v is random times
// uniform in [-magnitude, magnitude]. All visible keys of one sign share one score bit for bit, so
// the softmax weighs the visible +keys equally (or, when a causal row sees only -keys, those). A
// kernel that does not give the row maximum exactly exp(0) = 1 returns inf, NaN or zeros here.
// `magnitude` must be exactly representable in `dtype` (powers of two times small integers are).
struct HugeScoreInputs {
  Encoded q, k, v;
};
inline HugeScoreInputs MakeHugeScoreInputs(const AttentionCase& c, DType dtype, float magnitude,
                                           std::mt19937_64& rng) {
  const std::size_t q_n = c.batch * c.heads * c.q_len * c.head_dim;
  const std::size_t kv_n = c.batch * c.kv_heads * c.kv_len * c.head_dim;
  auto encode = [&](std::vector<float> raw) {
    Encoded e;
    e.bytes.resize(raw.size() * DTypeSize(dtype));
    ConvertFromFloat(dtype, raw.data(), raw.size(), e.bytes.data());
    e.values.resize(raw.size());
    ConvertToFloat(dtype, e.bytes.data(), raw.size(), e.values.data());
    return e;
  };
  std::vector<float> k(kv_n), v(kv_n);
  std::uniform_real_distribution<float> uniform(-magnitude, magnitude);
  for (float& x : v) x = uniform(rng);
  std::bernoulli_distribution positive(0.5);
  for (std::size_t row = 0; row < kv_n / c.head_dim; ++row) {
    const float sign = positive(rng) ? 1.0f : -1.0f;
    for (int64_t x = 0; x < c.head_dim; ++x) k[row * c.head_dim + x] = sign * magnitude;
  }
  return {encode(std::vector<float>(q_n, magnitude)), encode(std::move(k)), encode(std::move(v))};
}

// Magnitudes for MakeHugeScoreInputs: 1e2 to 1e5, within the dtype's range (fp16 ends at
// 65504), and 133120 (a bf16 value whose scores, about 1e11, first showed the fault).
inline std::vector<float> HugeScoreMagnitudes(DType dtype) {
  if (dtype == DType::kFloat16) return {1e2f, 1e3f, 1e4f, 6e4f};
  return {1e2f, 1e3f, 1e4f, 1e5f, 133120.0f};
}

inline std::vector<float> Decode(const std::vector<std::byte>& bytes, DType dtype) {
  std::vector<float> out(bytes.size() / DTypeSize(dtype));
  ConvertToFloat(dtype, bytes.data(), out.size(), out.data());
  return out;
}

// The accuracy every backend must reach against the double reference, per input dtype.
inline double Tolerance(DType d) {
  return d == DType::kFloat32 ? 1e-5 : d == DType::kFloat16 ? 2e-3 : 1e-2;
}

}  // namespace an1::testing
