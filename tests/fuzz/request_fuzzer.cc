// libFuzzer target for request decoding and validation (issue 18): whatever the bytes, decoding
// an AttentionRequest or PagedAttentionRequest, reading its tensors (ToTensorView), validating it
// (ValidateAttention, ValidatePagedAttention) and checking the paged index tensors' values
// (ValidatePagedIndices, then PagedCacheOffset for every accepted slot) must never crash, hang
// or read outside a tensor (ASan). The first byte picks the message. Built and run briefly by
// run_request_fuzzer.sh (ctest: request_fuzz).
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/paged_validation.h"
#include "engine/validation.h"
#include "server/convert.h"

namespace {

using namespace an1;

bool Read(const char* name, bool present, const v1::Tensor& tensor, TensorView* out) {
  StatusOr<TensorView> view = server::ToTensorView(name, present, tensor);
  if (!view.ok()) return false;
  *out = std::move(view).value();
  return true;
}

void Attention(const uint8_t* data, size_t size, const Limits& limits) {
  v1::AttentionRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  AttentionInputs in;
  if (!Read("q", request.has_q(), request.q(), &in.q) ||
      !Read("k", request.has_k(), request.k(), &in.k) ||
      !Read("v", request.has_v(), request.v(), &in.v)) {
    return;
  }
  in.causal = request.has_causal() ? request.causal() : true;
  if (request.has_scale()) in.scale = request.scale();
  std::vector<float> lse;
  if (request.return_lse()) {
    const std::size_t rows = LseElements(in.q);
    if (rows > (std::size_t{1} << 20)) return;
    lse.resize(rows);
    in.return_lse = true;
    in.lse = lse;
  }
  (void)ValidateAttention(in, limits);
}

void Paged(const uint8_t* data, size_t size, const Limits& limits) {
  v1::PagedAttentionRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  PagedAttentionInputs in;
  if (!Read("q", request.has_q(), request.q(), &in.q) ||
      !Read("cu_seqlens_q", request.has_cu_seqlens_q(), request.cu_seqlens_q(), &in.cu_seqlens_q) ||
      !Read("k_cache", request.has_k_cache(), request.k_cache(), &in.k_cache) ||
      !Read("v_cache", request.has_v_cache(), request.v_cache(), &in.v_cache) ||
      !Read("page_table", request.has_page_table(), request.page_table(), &in.page_table) ||
      !Read("kv_lens", request.has_kv_lens(), request.kv_lens(), &in.kv_lens)) {
    return;
  }
  if (request.has_k_new()) {
    in.k_new.emplace();
    if (!Read("k_new", true, request.k_new(), &*in.k_new)) return;
  }
  if (request.has_v_new()) {
    in.v_new.emplace();
    if (!Read("v_new", true, request.v_new(), &*in.v_new)) return;
  }
  in.causal = request.has_causal() ? request.causal() : true;
  if (request.has_scale()) in.scale = request.scale();
  in.window_left = request.has_window_left() ? request.window_left() : -1;
  in.window_right = request.has_window_right() ? request.window_right() : -1;
  in.softcap = request.softcap();
  StatusOr<ValidatedPagedAttention> problem = ValidatePagedAttention(in, limits);
  if (!problem.ok()) return;
  StatusOr<std::vector<PagedSequence>> sequences = ValidatePagedIndices(*problem, in);
  if (!sequences.ok()) return;
  // Every slot an accepted request reads must lie inside the caches.
  const int64_t cache_elements =
      static_cast<int64_t>(in.k_cache.data.size() / DTypeSize(in.k_cache.dtype));
  for (std::size_t b = 0; b < sequences->size(); ++b) {
    for (int64_t position = 0; position < (*sequences)[b].kv_len; ++position) {
      const int64_t offset =
          PagedCacheOffset(*problem, in.page_table, static_cast<int64_t>(b), position);
      if (offset < 0 || offset >= cache_elements) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {  // protobuf logs each invalid UTF-8 string it parses
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (size < 1) return 0;
  Limits limits;
  limits.max_tensor_bytes = std::size_t{1} << 20;
  if (data[0] & 1) {
    Paged(data + 1, size - 1, limits);
  } else {
    Attention(data + 1, size - 1, limits);
  }
  return 0;
}
