#include "engine/paged_validation.h"

#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>

#include "engine/tensor_checks.h"
#include "engine/validation.h"

namespace an1 {
namespace {

std::string Str(int64_t v) { return std::to_string(v); }

int64_t Int32At(const TensorView& t, int64_t index) {
  int32_t value;
  std::memcpy(&value, t.data.data() + index * 4, 4);
  return value;
}

Status CheckIndexTensor(const char* name, const TensorView& t, std::size_t rank, const char* layout,
                        const Limits& limits) {
  AN1_RETURN_IF_ERROR(CheckRank(name, t, rank, layout));
  if (t.dtype != DType::kInt32) {
    return InvalidArgumentError(std::string(name) + " is " + std::string(DTypeName(t.dtype)) +
                                "; index tensors must be int32");
  }
  if (t.device >= 0) {
    return InvalidArgumentError(std::string(name) +
                                " is in GPU memory; index tensors must be inline or in system "
                                "shared memory (the server checks every entry before use)");
  }
  return CheckTensor(name, t, limits);
}

Status CheckDataTensor(const char* name, const TensorView& t, std::size_t rank, const char* layout,
                       const TensorView& q, const Limits& limits) {
  AN1_RETURN_IF_ERROR(CheckRank(name, t, rank, layout));
  AN1_RETURN_IF_ERROR(CheckSameDType(name, t, "q", q.dtype));
  return CheckTensor(name, t, limits);
}

Status CheckWindow(const char* name, int value) {
  if (value < -1) {
    return InvalidArgumentError(std::string(name) + " is " + Str(value) +
                                "; use -1 (unbounded) or a number of positions >= 0");
  }
  return OkStatus();
}

Status CheckAppend(const PagedAttentionInputs& in, const PagedAttentionDims& d,
                   const Limits& limits) {
  if (in.k_new.has_value() != in.v_new.has_value()) {
    return InvalidArgumentError(in.k_new ? "k_new is given without v_new; give both or neither"
                                         : "v_new is given without k_new; give both or neither");
  }
  if (!in.k_new) return OkStatus();
  const char* layout = "(total_q, kv_heads, head_dim)";
  AN1_RETURN_IF_ERROR(CheckDataTensor("k_new", *in.k_new, 3, layout, in.q, limits));
  AN1_RETURN_IF_ERROR(CheckDataTensor("v_new", *in.v_new, 3, layout, in.q, limits));
  const std::vector<int64_t> want{d.total_q, d.kv_heads, d.head_dim};
  for (const auto& [name, t] :
       {std::pair<const char*, const TensorView&>{"k_new", *in.k_new}, {"v_new", *in.v_new}}) {
    if (t.shape != want) {
      return InvalidArgumentError(std::string(name) + " has shape " + ShapeToString(t.shape) +
                                  "; (total_q, kv_heads, head_dim) is " + ShapeToString(want));
    }
  }
  if (in.k_cache_writable.size() != in.k_cache.data.size() ||
      in.v_cache_writable.size() != in.v_cache.data.size()) {
    return InvalidArgumentError(
        "k_new and v_new append into the caller's cache, so k_cache and v_cache must be in a "
        "shared memory region; with inline caches the update would be lost");
  }
  return OkStatus();
}

}  // namespace

StatusOr<ValidatedPagedAttention> ValidatePagedAttention(const PagedAttentionInputs& in,
                                                         const Limits& limits) {
  const char* cache_layout = "(num_pages, page_size, kv_heads, head_dim)";
  AN1_RETURN_IF_ERROR(CheckRank("q", in.q, 3, "(total_q, heads, head_dim)"));
  AN1_RETURN_IF_ERROR(CheckFloatDType("q", in.q));
  AN1_RETURN_IF_ERROR(CheckTensor("q", in.q, limits));
  AN1_RETURN_IF_ERROR(CheckDataTensor("k_cache", in.k_cache, 4, cache_layout, in.q, limits));
  AN1_RETURN_IF_ERROR(CheckDataTensor("v_cache", in.v_cache, 4, cache_layout, in.q, limits));
  AN1_RETURN_IF_ERROR(CheckIndexTensor("cu_seqlens_q", in.cu_seqlens_q, 1, "(batch + 1)", limits));
  AN1_RETURN_IF_ERROR(
      CheckIndexTensor("page_table", in.page_table, 2, "(batch, max_pages_per_seq)", limits));
  AN1_RETURN_IF_ERROR(CheckIndexTensor("kv_lens", in.kv_lens, 1, "(batch)", limits));

  PagedAttentionDims d;
  d.total_q = in.q.shape[0];
  d.heads = in.q.shape[1];
  d.head_dim = in.q.shape[2];
  d.num_pages = in.k_cache.shape[0];
  d.page_size = in.k_cache.shape[1];
  d.kv_heads = in.k_cache.shape[2];
  d.batch = in.kv_lens.shape[0];
  d.max_pages_per_seq = in.page_table.shape[1];
  AN1_RETURN_IF_ERROR(
      CheckDimEqual("k_cache head_dim (k_cache.shape[3])", in.k_cache.shape[3], d.head_dim));
  if (in.v_cache.shape != in.k_cache.shape) {
    return InvalidArgumentError("v_cache has shape " + ShapeToString(in.v_cache.shape) +
                                " but k_cache has " + ShapeToString(in.k_cache.shape) +
                                "; they must be equal");
  }
  if (d.page_size > kMaxPageSize || (d.page_size & (d.page_size - 1)) != 0) {
    return InvalidArgumentError("page_size (k_cache.shape[1]) is " + Str(d.page_size) +
                                "; it must be a power of two from 1 to " + Str(kMaxPageSize));
  }
  if (d.heads % d.kv_heads != 0) {
    return InvalidArgumentError("q heads (" + Str(d.heads) +
                                ") must be a multiple of the caches' kv_heads (" + Str(d.kv_heads) +
                                ") for grouped-query attention");
  }
  AN1_RETURN_IF_ERROR(
      CheckDimEqual("page_table batch (page_table.shape[0])", in.page_table.shape[0], d.batch));
  AN1_RETURN_IF_ERROR(CheckDimEqual("cu_seqlens_q length (cu_seqlens_q.shape[0])",
                                    in.cu_seqlens_q.shape[0], d.batch + 1));
  AN1_RETURN_IF_ERROR(CheckAppend(in, d, limits));
  AN1_RETURN_IF_ERROR(CheckWindow("window_left", in.window_left));
  AN1_RETURN_IF_ERROR(CheckWindow("window_right", in.window_right));
  if (!std::isfinite(in.softcap) || in.softcap < 0) {
    return InvalidArgumentError("softcap must be a finite number >= 0 (0: off)");
  }

  ValidatedPagedAttention out;
  out.dims = d;
  out.dtype = in.q.dtype;
  out.append = in.k_new.has_value();
  StatusOr<float> scale = ResolveScale(in.scale, d.head_dim, in.q.dtype);
  if (!scale.ok()) return scale.status();
  out.scale = *scale;
  out.output = TensorSpec{in.q.dtype, in.q.shape, in.q.data.size()};
  // total_q * H cannot overflow: q's total_q * H * D elements fit in its byte count.
  const auto lse_elements = static_cast<std::size_t>(d.total_q * d.heads);
  if (in.return_lse) {
    if (in.lse.size() != lse_elements) {
      return InvalidArgumentError("the lse buffer has " + std::to_string(in.lse.size()) +
                                  " elements; (total_q, heads) needs " +
                                  std::to_string(lse_elements));
    }
    out.lse = TensorSpec{DType::kFloat32, {d.total_q, d.heads}, lse_elements * 4};
  } else if (!in.lse.empty()) {
    return InvalidArgumentError("an lse buffer was given but return_lse is not set");
  }
  return out;
}

StatusOr<std::vector<PagedSequence>> ValidatePagedIndices(const ValidatedPagedAttention& problem,
                                                          const PagedAttentionInputs& in) {
  const PagedAttentionDims& d = problem.dims;
  if (const int64_t first = Int32At(in.cu_seqlens_q, 0); first != 0) {
    return InvalidArgumentError("cu_seqlens_q[0] = " + Str(first) + "; it must be 0");
  }
  // Both products fit easily: every factor is below 2^31 (page_size <= 256).
  const int64_t max_kv_len = d.max_pages_per_seq * d.page_size;
  std::vector<PagedSequence> sequences(static_cast<std::size_t>(d.batch));
  for (int64_t b = 0; b < d.batch; ++b) {
    const int64_t start = Int32At(in.cu_seqlens_q, b);
    const int64_t end = Int32At(in.cu_seqlens_q, b + 1);
    if (end < start) {
      return InvalidArgumentError("cu_seqlens_q[" + Str(b + 1) + "] = " + Str(end) +
                                  " is below cu_seqlens_q[" + Str(b) + "] = " + Str(start) +
                                  "; the offsets must not decrease");
    }
    if (end > d.total_q) {
      return InvalidArgumentError("cu_seqlens_q[" + Str(b + 1) + "] = " + Str(end) +
                                  " is beyond total_q = " + Str(d.total_q) + " (q.shape[0])");
    }
    const int64_t kv_len = Int32At(in.kv_lens, b);
    if (kv_len < 0 || kv_len > max_kv_len) {
      return InvalidArgumentError("kv_lens[" + Str(b) + "] = " + Str(kv_len) + " is outside [0, " +
                                  Str(max_kv_len) + "] (max_pages_per_seq " +
                                  Str(d.max_pages_per_seq) + " x page_size " + Str(d.page_size) +
                                  ")");
    }
    if (end - start > kv_len) {
      return InvalidArgumentError("sequence " + Str(b) + " has " + Str(end - start) +
                                  " query rows (cu_seqlens_q) but kv_lens[" + Str(b) +
                                  "] = " + Str(kv_len) + "; q_len must not exceed kv_len");
    }
    const int64_t pages = (kv_len + d.page_size - 1) / d.page_size;
    for (int64_t p = 0; p < pages; ++p) {
      const int64_t page = Int32At(in.page_table, b * d.max_pages_per_seq + p);
      if (page < 0 || page >= d.num_pages) {
        return InvalidArgumentError("page_table[" + Str(b) + "][" + Str(p) + "] = " + Str(page) +
                                    " is outside [0, " + Str(d.num_pages) + ")");
      }
    }
    sequences[static_cast<std::size_t>(b)] = {start, end - start, kv_len};
  }
  if (const int64_t last = Int32At(in.cu_seqlens_q, d.batch); last != d.total_q) {
    return InvalidArgumentError("cu_seqlens_q[" + Str(d.batch) + "] = " + Str(last) +
                                " must equal total_q = " + Str(d.total_q) + " (q.shape[0])");
  }
  if (problem.append) {  // two appended rows into one slot would race on a GPU
    std::unordered_map<int64_t, int64_t> writer;  // slot -> sequence
    writer.reserve(static_cast<std::size_t>(d.total_q));
    for (int64_t b = 0; b < d.batch; ++b) {
      const PagedSequence& s = sequences[static_cast<std::size_t>(b)];
      for (int64_t pos = s.kv_len - s.q_len; pos < s.kv_len; ++pos) {
        const int64_t page = Int32At(in.page_table, b * d.max_pages_per_seq + pos / d.page_size);
        const int64_t slot = page * d.page_size + pos % d.page_size;
        if (auto [it, fresh] = writer.emplace(slot, b); !fresh) {
          return InvalidArgumentError("sequences " + Str(it->second) + " and " + Str(b) +
                                      " both append into page " + Str(page) + " slot " +
                                      Str(pos % d.page_size) + " (page_table shares the page)");
        }
      }
    }
  }
  return sequences;
}

int64_t PagedCacheOffset(const ValidatedPagedAttention& problem, const TensorView& page_table,
                         int64_t b, int64_t position) {
  const PagedAttentionDims& d = problem.dims;
  const int64_t page = Int32At(page_table, b * d.max_pages_per_seq + position / d.page_size);
  return ((page * d.page_size + position % d.page_size) * d.kv_heads) * d.head_dim;
}

std::size_t PagedLseElements(const TensorView& q) { return RowElementsBeforeLastDim(q, 3); }

}  // namespace an1
