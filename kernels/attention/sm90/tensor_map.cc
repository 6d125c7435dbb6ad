// The sm90 kernel's TMA tensor maps (common/tensor_map.h), one per tensor, with its tile shapes.
#include "kernels/attention/common/tensor_map.h"

#include "kernels/attention/sm90/launch.h"
#include "kernels/attention/sm90/tiles.h"

namespace an1::kernels::attention::sm90 {

static_assert(Tiles::kBoxColumns == kTmaBoxColumns, "the kernel's boxes are the maps' boxes");

KernelStatus EncodeTensorMaps(const AttentionParams& p, KernelArgs* args) {
  const int64_t bh = p.batch * p.heads, bhkv = p.batch * p.kv_heads;
  const struct {
    CUtensorMap* map;
    const void* base;
    int64_t rows, matrices;
    uint32_t box_rows;
  } maps[] = {{&args->q_map, p.q, p.q_len, bh, Tiles::kBlockM},
              {&args->k_map, p.k, p.kv_len, bhkv, Tiles::kBlockN},
              {&args->v_map, p.v, p.kv_len, bhkv, Tiles::kBlockN},
              {&args->o_map, p.o, p.q_len, bh, 64}};
  for (const auto& m : maps) {
    KernelStatus s =
        EncodeRowTiles("sm90", m.map, p.dtype, m.base, p.head_dim, m.rows, m.matrices, m.box_rows);
    if (!s.ok()) return s;
  }
  return KernelStatus::Ok();
}

}  // namespace an1::kernels::attention::sm90
