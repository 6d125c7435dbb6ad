// Where a prefill kernel's paged source (sm80 and sm90, `kPaged`) finds its rows: prefill chunks
// of a ragged batch over a paged KV cache, the layout of decode/paged.h (q and o (total_q, heads,
// head_dim), caches (num_pages, page_size, kv_heads, head_dim)); bottom-right causal, no window,
// no softcap. Device pointers; the index tensors are checked on the host (every page-table entry
// a sequence's kv_len reaches is in range).
#pragma once

#include <vector_types.h>

#include <cstdint>

namespace an1::kernels::attention {

struct PagedRows {
  const int4* work = nullptr;  // per work tile: {sequence, head, query block, 0}
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* kv_lens = nullptr;
  const int32_t* page_table = nullptr;  // (batch, max_pages_per_seq)
  int max_pages_per_seq = 0;
  int page_shift = 0;  // log2(page_size)
};

}  // namespace an1::kernels::attention
