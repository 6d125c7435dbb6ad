// Tile choices of the sm80 attention kernel, with the reason beside each. Plain constants, so
// that host code (coverage checks) and the kernel read the same numbers.
#pragma once

namespace an1::kernels::attention::sm80 {

template <bool kCausal>
struct Tiles {
  // 4 warps, 2 m16 row tiles per warp (128 query rows per block): every K and V fragment read
  // from shared memory feeds both row tiles, halving the ldmatrix traffic that bounds the loop
  // (dense 2.39 -> 1.90 ms at 8x32x2048x128 on an H100), and K/V are re-read from L2 once per
  // 128 rows. 255 registers for head_dim 128: two blocks per SM.
  static constexpr int kWarps = 4;
  static constexpr int kRowTiles = 2;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = kWarps * 16 * kRowTiles;
  static constexpr int kBlockN = 64;  // 64 keys per tile: 8 n8 MMA tiles of scores
  static constexpr int kPad = 8;      // +16 bytes per smem row: ldmatrix conflict-free
  // Q + two K/V buffers = 104 KiB of shared memory at head_dim 128: two blocks per SM, as the
  // registers allow. A third buffer would cost the second block.
  static constexpr int kKvBuffers = 2;
  // Blocks resident per SM, for the head groups of the launch (2 * SMs query blocks per group).
  static constexpr int kBlocksPerSm = 2;
};

// Shared memory of one block: Q, then kKvBuffers K/V tile pairs, rows padded by kPad elements.
template <bool kCausal>
constexpr int SharedMemoryBytes(int head_dim, int element_bytes) {
  using Tile = Tiles<kCausal>;
  return (Tile::kBlockM + 2 * Tile::kKvBuffers * Tile::kBlockN) * (head_dim + Tile::kPad) *
         element_bytes;
}

}  // namespace an1::kernels::attention::sm80
