// Random paged-attention problems and their float64 reference, shared by the engine-level and
// server tests: a shuffled page table with spare pages, cache slots that must never be read
// (past each kv_len, and the appended ones before the append) filled with NaN, and page-table
// padding holding out-of-range garbage (never checked, never read).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "engine/paged_validation.h"
#include "tests/reference.h"

namespace an1::testing {

struct PagedCase {
  std::vector<int32_t> kv_lens, q_lens;
  int64_t heads = 4, kv_heads = 2, head_dim = 32, page_size = 16;
  bool causal = true;
  int window_left = -1, window_right = -1;
  float softcap = 0;
  bool append = false;
};

struct PagedData {
  int64_t total_q = 0, num_pages = 0, max_pages = 1;
  std::vector<int32_t> cu_seqlens, page_table, kv_lens;
  Encoded q, k_cache, v_cache, k_new, v_new;  // caches: NaN where never to be read
};

inline Encoded EncodeValues(std::vector<float> raw, DType dtype) {
  Encoded e;
  e.bytes.resize(raw.size() * DTypeSize(dtype));
  ConvertFromFloat(dtype, raw.data(), raw.size(), e.bytes.data());
  e.values.resize(raw.size());
  ConvertToFloat(dtype, e.bytes.data(), raw.size(), e.values.data());
  return e;
}

inline PagedData MakePagedData(const PagedCase& c, DType dtype, std::mt19937_64& rng,
                               float unread = std::numeric_limits<float>::quiet_NaN()) {
  PagedData d;
  const auto batch = c.kv_lens.size();
  d.cu_seqlens.push_back(0);
  int64_t used = 0;
  for (std::size_t b = 0; b < batch; ++b) {
    d.cu_seqlens.push_back(d.cu_seqlens.back() + c.q_lens[b]);
    const int64_t pages = (c.kv_lens[b] + c.page_size - 1) / c.page_size;
    d.max_pages = std::max(d.max_pages, pages + 1);  // one padding column at least
    used += pages;
  }
  d.total_q = d.cu_seqlens.back();
  d.num_pages = used + 3;  // spare pages nobody uses, NaN throughout
  d.kv_lens = c.kv_lens;
  std::vector<int32_t> order(static_cast<std::size_t>(d.num_pages));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  d.page_table.assign(batch * d.max_pages, 1 << 30);  // padding: out of range, never checked
  const int64_t slot = c.kv_heads * c.head_dim;
  std::vector<float> k(static_cast<std::size_t>(d.num_pages * c.page_size * slot), unread);
  std::vector<float> v = k;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::size_t next = 0;
  for (std::size_t b = 0; b < batch; ++b) {
    const int64_t filled = c.kv_lens[b] - (c.append ? c.q_lens[b] : 0);
    for (int64_t p = 0; p * c.page_size < c.kv_lens[b]; ++p) {
      const int32_t page = order[next++];
      d.page_table[b * d.max_pages + p] = page;
      for (int64_t s = 0; s < c.page_size && p * c.page_size + s < filled; ++s) {
        for (int64_t x = 0; x < slot; ++x) {
          k[(page * c.page_size + s) * slot + x] = normal(rng);
          v[(page * c.page_size + s) * slot + x] = normal(rng);
        }
      }
    }
  }
  d.k_cache = EncodeValues(std::move(k), dtype);
  d.v_cache = EncodeValues(std::move(v), dtype);
  d.q = Encode(static_cast<std::size_t>(d.total_q * c.heads * c.head_dim), dtype, rng);
  if (c.append) {
    d.k_new = Encode(static_cast<std::size_t>(d.total_q * slot), dtype, rng);
    d.v_new = Encode(static_cast<std::size_t>(d.total_q * slot), dtype, rng);
  }
  return d;
}

// Key or value `x` of position j of sequence b, kv head `kvh`, as the request sees it (after the
// append).
inline float PagedAt(const PagedCase& c, const PagedData& d, bool value, int64_t b, int64_t j,
                     int64_t kvh, int64_t x) {
  const int64_t slot = c.kv_heads * c.head_dim;
  const int64_t appended_from = c.kv_lens[b] - (c.append ? c.q_lens[b] : 0);
  if (j >= appended_from) {
    const int64_t row = d.cu_seqlens[b] + (j - appended_from);
    return (value ? d.v_new : d.k_new).values[row * slot + kvh * c.head_dim + x];
  }
  const int64_t page = d.page_table[b * d.max_pages + j / c.page_size];
  const int64_t at = (page * c.page_size + j % c.page_size) * slot + kvh * c.head_dim + x;
  return (value ? d.v_cache : d.k_cache).values[at];
}

// Output (total_q, H, D) and LSE (total_q, H) in double.
inline std::vector<double> ReferencePaged(const PagedCase& c, const PagedData& d, double scale,
                                          std::vector<double>* lse) {
  std::vector<double> out(static_cast<std::size_t>(d.total_q * c.heads * c.head_dim), 0.0);
  lse->assign(static_cast<std::size_t>(d.total_q * c.heads), -INFINITY);
  const int64_t group = c.heads / c.kv_heads;
  for (std::size_t b = 0; b < c.kv_lens.size(); ++b) {
    for (int64_t l = 0; l < c.q_lens[b]; ++l) {
      const int64_t t = d.cu_seqlens[b] + l, i = c.kv_lens[b] - c.q_lens[b] + l;
      for (int64_t h = 0; h < c.heads; ++h) {
        std::vector<double> s;
        std::vector<int64_t> keys;
        for (int64_t j = 0; j < c.kv_lens[b]; ++j) {
          if ((c.causal && j > i) || (c.window_left >= 0 && j < i - c.window_left) ||
              (c.window_right >= 0 && j > i + c.window_right)) {
            continue;
          }
          double dot = 0;
          for (int64_t x = 0; x < c.head_dim; ++x) {
            dot += double(d.q.values[(t * c.heads + h) * c.head_dim + x]) *
                   PagedAt(c, d, false, b, j, h / group, x);
          }
          double score = dot * scale;
          if (c.softcap > 0) score = c.softcap * std::tanh(score / c.softcap);
          s.push_back(score);
          keys.push_back(j);
        }
        if (s.empty()) continue;
        const double m = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double& p : s) sum += (p = std::exp(p - m));
        for (std::size_t n = 0; n < s.size(); ++n) {
          for (int64_t x = 0; x < c.head_dim; ++x) {
            out[(t * c.heads + h) * c.head_dim + x] +=
                s[n] / sum * PagedAt(c, d, true, b, keys[n], h / group, x);
          }
        }
        (*lse)[t * c.heads + h] = m + std::log(sum);
      }
    }
  }
  return out;
}

inline TensorView View(DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes) {
  return TensorView{dtype, std::move(shape), bytes};
}

template <typename T>
inline std::span<const std::byte> Bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

// A request's inputs over `data`, with the caches copied so that the append can write them.
struct PagedRequest {
  std::vector<std::byte> k_cache, v_cache;
  std::vector<float> lse;
  std::vector<CacheRange> appended;
  PagedAttentionInputs inputs;

  PagedRequest(const PagedCase& c, const PagedData& d, DType dtype, bool return_lse = true)
      : k_cache(d.k_cache.bytes), v_cache(d.v_cache.bytes) {
    const int64_t batch = static_cast<int64_t>(c.kv_lens.size());
    const std::vector<int64_t> cache_shape{d.num_pages, c.page_size, c.kv_heads, c.head_dim};
    inputs.q = View(dtype, {d.total_q, c.heads, c.head_dim}, d.q.bytes);
    inputs.cu_seqlens_q = View(DType::kInt32, {batch + 1}, Bytes(d.cu_seqlens));
    inputs.k_cache = View(dtype, cache_shape, k_cache);
    inputs.v_cache = View(dtype, cache_shape, v_cache);
    inputs.page_table = View(DType::kInt32, {batch, d.max_pages}, Bytes(d.page_table));
    inputs.kv_lens = View(DType::kInt32, {batch}, Bytes(d.kv_lens));
    if (c.append) {
      inputs.k_new = View(dtype, {d.total_q, c.kv_heads, c.head_dim}, d.k_new.bytes);
      inputs.v_new = View(dtype, {d.total_q, c.kv_heads, c.head_dim}, d.v_new.bytes);
      inputs.k_cache_writable = k_cache;
      inputs.v_cache_writable = v_cache;
      inputs.appended = &appended;
    }
    inputs.causal = c.causal;
    inputs.window_left = c.window_left;
    inputs.window_right = c.window_right;
    inputs.softcap = c.softcap;
    if (return_lse) {
      lse.assign(static_cast<std::size_t>(d.total_q * c.heads), 0.0f);
      inputs.return_lse = true;
      inputs.lse = lse;
    }
  }
};

}  // namespace an1::testing
