// The sm90 kernel's TMA tensor maps (common/tensor_map.h), one per tensor, with its tile shapes.
#include "kernels/attention/common/tensor_map.h"

#include <algorithm>
#include <utility>

#include "kernels/attention/sm90/launch.h"
#include "kernels/attention/sm90/tiles.h"

namespace an1::kernels::attention::sm90 {

static_assert(Tiles::kBoxColumns == kTmaBoxColumns, "the kernel's boxes are the maps' boxes");

KernelStatus EncodeTensorMaps(const AttentionParams& p, int block_n, KernelArgs* args) {
  const int64_t bh = p.batch * p.heads, bhkv = p.batch * p.kv_heads;
  const auto kv_rows = static_cast<uint32_t>(block_n);
  const struct {
    CUtensorMap* map;
    const void* base;
    int64_t rows, matrices;
    uint32_t box_rows;
  } maps[] = {{&args->q_map, p.q, p.q_len, bh, Tiles::kBlockM},
              {&args->k_map, p.k, p.kv_len, bhkv, kv_rows},
              {&args->v_map, p.v, p.kv_len, bhkv, kv_rows},
              {&args->o_map, p.o, p.q_len, bh, 64}};
  for (const auto& m : maps) {
    KernelStatus s =
        EncodeRowTiles("sm90", m.map, p.dtype, m.base, p.head_dim, m.rows, m.matrices, m.box_rows);
    if (!s.ok()) return s;
  }
  return KernelStatus::Ok();
}

KernelStatus EncodePagedTensorMaps(ElementType dtype, const void* q, const void* k_cache,
                                   const void* v_cache, int64_t total_q, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim, int64_t slots,
                                   int64_t page_size, KernelArgs* args) {
  const int64_t row_bytes = head_dim * 2;
  if (KernelStatus s =
          EncodeTiles3d("sm90 paged", &args->q_map, dtype, q, {head_dim, heads, total_q},
                        {row_bytes, heads * row_bytes}, {kTmaBoxColumns, 1, Tiles::kBlockM});
      !s.ok()) {
    return s;
  }
  const uint32_t box_rows = static_cast<uint32_t>(std::min<int64_t>(page_size, Tiles::kBlockN));
  for (auto [map, base] : {std::pair{&args->k_map, k_cache}, std::pair{&args->v_map, v_cache}}) {
    KernelStatus s =
        EncodeTiles3d("sm90 paged", map, dtype, base, {head_dim, kv_heads, slots},
                      {row_bytes, kv_heads * row_bytes}, {kTmaBoxColumns, 1, box_rows});
    if (!s.ok()) return s;
  }
  return KernelStatus::Ok();
}

}  // namespace an1::kernels::attention::sm90
