// Tile choices and the split rule of the decode kernel, with the reason beside each. Plain
// constants and host functions, so that coverage checks, workspace sizing and the kernel read
// the same numbers.
#pragma once

#include <cstdint>

// Build-time overrides for measuring other pipeline shapes (tests/bench/decode_bench.py);
// the defaults are the measured choice.
#ifndef AN1_DECODE_BLOCK_N
#define AN1_DECODE_BLOCK_N 64
#endif
#ifndef AN1_DECODE_STAGES
#define AN1_DECODE_STAGES 3
#endif
// 1: K/V tiles arrive by TMA (one thread issues a tile's 64-column boxes, an mbarrier per stage
// counts their bytes); 0: by cp.async, 16 bytes a thread (3% slower on an H200).
#ifndef AN1_DECODE_TMA
#define AN1_DECODE_TMA 1
#endif

// The L2 line size TMA's K/V reads are promoted to (tensor_map.h). 128: a box row is 128 bytes,
// fetched as is. Promoting to 256 bytes (the other half of a head_dim 128 row, which the next
// box reads anyway) cost 6-8% of the bandwidth on an H200 (4.11 against 4.42 TB/s at B=64,
// Sk=4096): the second box's reads then wait on the first's promoted misses.
#ifndef AN1_DECODE_L2_PROMOTION
#define AN1_DECODE_L2_PROMOTION 128
#endif

namespace an1::kernels::attention::decode {

struct Tiles {
  // Decode is memory-bound: the time is the bytes of K and V over the bandwidth. A block holds
  // the 16 packed query rows of one KV head (its group's query heads x the step's queries, one
  // m16 tile that every warp shares), so each K/V tile is read once per KV head, not once per
  // query head; the 4 warps split every 64-key tile into 16-key slices, each with its own online
  // softmax, merged once at the end of the block.
  static constexpr int kRows = 16;                    // packed query rows per block
  static constexpr int kBlockN = AN1_DECODE_BLOCK_N;  // keys per pipeline stage
  static constexpr int kKeysPerWarp = 16;             // one k16 step of P V per warp and stage
  static constexpr int kWarps = kBlockN / kKeysPerWarp;
  static constexpr int kThreads = kWarps * 32;
  // cp.async rows are padded by kPad elements (+16 bytes: ldmatrix conflict-free); TMA tiles are
  // not padded but stored with the 128-byte swizzle, which ldmatrix reads conflict-free too.
  static constexpr int kPad = 8;
  static constexpr bool kTma = AN1_DECODE_TMA != 0;
  static constexpr int kL2PromotionBytes = AN1_DECODE_L2_PROMOTION;
  // Three K/V stages in flight (two loading while one is computed): 104 KiB at head_dim 128,
  // so two blocks share an SM and about 140 KiB per SM stay in flight, several times what the
  // bandwidth-latency product of HBM3e needs.
  static constexpr int kStages = AN1_DECODE_STAGES;
  static constexpr int kMaxQueries = 16;  // Sq of a decode step (speculative decoding included)
  static constexpr int kMaxSplits = 128;
  static constexpr int kMaxBlocksPerSm = 4;
};

// Bytes of one K or V tile as TMA stores it: kBlockN rows of head_dim elements, unpadded, in
// 64-column boxes of kBlockN x 128 bytes.
constexpr int TmaTileBytes(int head_dim, int element_bytes) {
  return Tiles::kBlockN * head_dim * element_bytes;
}

// Shared memory of one block. cp.async: the Q tile and kStages K/V tile pairs, rows padded by
// kPad. TMA: kStages K/V tile pairs from a 1024-byte boundary (the swizzle's period; up to 1024
// bytes go to aligning the base), the padded Q tile and one mbarrier per stage. The cross-warp
// merge at the end reuses it (fp32 partial outputs of every warp, their max and sum).
// (`tma`: whether this instantiation loads by TMA; the paged one gathers rows by cp.async.)
constexpr int SharedMemoryBytes(int head_dim, int element_bytes, bool tma = Tiles::kTma) {
  const int q_tile = Tiles::kRows * (head_dim + Tiles::kPad) * element_bytes;
  const int pipeline =
      tma ? 1024 + 2 * Tiles::kStages * TmaTileBytes(head_dim, element_bytes) + q_tile +
                8 * Tiles::kStages
          : q_tile + 2 * Tiles::kStages * Tiles::kBlockN * (head_dim + Tiles::kPad) * element_bytes;
  // Per warp and row: the output, max, sum and weight; per row: the total and the max.
  const int merge = (Tiles::kWarps * Tiles::kRows * (head_dim + 3) + 2 * Tiles::kRows) * 4;
  return pipeline > merge ? pipeline : merge;
}

// How a problem is cut into blocks.
struct Split {
  int64_t row_blocks = 1;       // blocks of kRows packed rows per KV head
  int64_t units = 1;            // batch x kv_heads x row_blocks: blocks without splitting
  int64_t tiles = 1;            // kBlockN-key tiles of the KV length
  int splits = 1;               // blocks the KV length is cut into
  int64_t tiles_per_split = 1;  // every split but the last has exactly this many
};

// The split rule. The GPU holds `slots` = SMs x blocks per SM at once, and blocks of equal
// work finish together, so cutting the KV length into n splits takes about
//   waves(n) x (tiles(n) + kBlockOverheadTiles) + (n > 1 ? 1 : 0)   tile-times,
// with waves(n) = ceil(units x n / slots), tiles(n) = ceil(tiles / n) the tiles of one split,
// kBlockOverheadTiles a block's fixed cost (filling the ring, the merge, the writes) and the last
// term the combine pass. The rule takes the n of least estimate, the smallest n among equals,
// for n up to kMaxSplits and half the tiles (splits hold two tiles or more, a shorter last one
// aside). So a batch that fills the GPU in whole waves is not split, one long sequence is cut
// into as many splits as fill every slot once, and a batch that would leave most of a last wave
// idle is cut so that the waves come out even. (The earlier rule, the fewest splits within 85%
// of the best wave efficiency, left 15% of the slots idle at B=1, Sk=128k.)
inline constexpr int64_t kBlockOverheadTiles = 2;

inline Split ChooseSplit(int64_t batch, int64_t kv_heads, int64_t rows_per_kv_head, int64_t kv_len,
                         int sms, int blocks_per_sm) {
  Split s;
  s.row_blocks = (rows_per_kv_head + Tiles::kRows - 1) / Tiles::kRows;
  s.units = batch * kv_heads * s.row_blocks;
  s.tiles = (kv_len + Tiles::kBlockN - 1) / Tiles::kBlockN;
  const int64_t slots = int64_t{sms} * (blocks_per_sm < 1 ? 1 : blocks_per_sm);
  int64_t max_splits = s.tiles / 2;
  if (max_splits > Tiles::kMaxSplits) max_splits = Tiles::kMaxSplits;
  auto estimate = [&](int64_t n) {
    const int64_t waves = (s.units * n + slots - 1) / slots;
    return waves * ((s.tiles + n - 1) / n + kBlockOverheadTiles) + (n > 1 ? 1 : 0);
  };
  int64_t chosen = 1;
  for (int64_t n = 2; n <= max_splits; ++n) {
    if (estimate(n) < estimate(chosen)) chosen = n;
  }
  // Equal tile counts per split; no split left empty.
  s.tiles_per_split = (s.tiles + chosen - 1) / chosen;
  s.splits = static_cast<int>((s.tiles + s.tiles_per_split - 1) / s.tiles_per_split);
  return s;
}

}  // namespace an1::kernels::attention::decode
