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

}  // namespace an1::kernels::attention
