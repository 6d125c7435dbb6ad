// Block scheduling shared by the attention kernels: which (batch x head, query block) a thread
// block computes.
//
// Blocks run in groups of `heads_per_group` (batch, head) pairs, all query blocks of a group
// together: about one wave, so each head's K/V come from DRAM once and then from L2. Inside a
// group, with `heavy_first` (causal), query blocks further down (more keys) go first, so that the
// last wave is short.
#pragma once

#include <cstdint>

namespace an1::kernels::attention {

struct QueryBlock {
  int64_t bh;   // batch * heads + head
  int block_m;  // the query block within the head
};

__device__ __forceinline__ QueryBlock HeadGroupedBlock(int64_t block, int64_t blocks_m,
                                                       int64_t bh_count, int64_t heads_per_group,
                                                       bool heavy_first) {
  const int64_t head_group = block / (heads_per_group * blocks_m);
  const int64_t in_group = block % (heads_per_group * blocks_m);
  const int64_t group_heads = min(heads_per_group, bh_count - head_group * heads_per_group);
  const int64_t bh = head_group * heads_per_group + in_group % group_heads;
  const int64_t m = in_group / group_heads;
  return {bh, static_cast<int>(heavy_first ? blocks_m - 1 - m : m)};
}

// Heads per group: enough query blocks to fill the GPU once (`blocks_per_sm` resident per SM).
inline int64_t HeadsPerGroup(int64_t blocks_m, int blocks_per_sm, int sms) {
  const int64_t heads = int64_t{blocks_per_sm} * sms / blocks_m;
  return heads < 1 ? 1 : heads;
}

}  // namespace an1::kernels::attention
