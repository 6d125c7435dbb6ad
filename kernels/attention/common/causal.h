// The causal mask, written once for every kernel, the GPU baseline and the CPU backend.
//
// Causal attention is aligned bottom-right, the convention of FlashAttention (2.1 and later) and
// of PyTorch's SDPA when Sq != Sk: the last query row sees every key, and query row i (0-based)
// sees keys j <= i + (kv_len - q_len). With more queries than keys the first q_len - kv_len rows
// see no key at all (their output is zero).
#pragma once

#if defined(__CUDACC__)
#define AN1_HOST_DEVICE __host__ __device__
#else
#define AN1_HOST_DEVICE
#endif

namespace an1::kernels::attention {

// How many keys query row `row` (0 <= row < q_len) sees: keys [0, result) of kv_len, so the
// result is in [0, kv_len]. Every key when not causal. `Int` is int in kernels' inner loops
// (lengths there are below 2^31) and int64_t elsewhere.
template <typename Int>
AN1_HOST_DEVICE constexpr Int VisibleKeys(Int row, Int q_len, Int kv_len, bool causal) {
  if (!causal) return kv_len;
  const Int limit = row + (kv_len - q_len) + 1;
  return limit < 0 ? Int{0} : (limit < kv_len ? limit : kv_len);
}

// The keys [*first, *end) query `row` (0-based, of `q_len`) sees among `kv_len` keys: with
// bottom-right alignment its position is kv_len - q_len + row; causal: keys up to it; a sliding
// window (FlashAttention's window_size): keys from position - window_left and up to position +
// window_right (-1: unbounded on that side). Empty when *first >= *end.
template <typename Int>
AN1_HOST_DEVICE constexpr void VisibleRange(Int row, Int q_len, Int kv_len, bool causal,
                                            int window_left, int window_right, Int* first,
                                            Int* end) {
  const Int position = kv_len - q_len + row;
  Int lo = window_left < 0 ? Int{0} : position - window_left;
  Int last = causal ? position : kv_len - 1;
  if (window_right >= 0 && position + window_right < last) last = position + window_right;
  if (last > kv_len - 1) last = kv_len - 1;
  *first = lo < 0 ? Int{0} : lo;
  *end = last + 1 < *first ? *first : last + 1;
}

}  // namespace an1::kernels::attention
