// Tile choices of the Hopper (sm90) attention kernel, with the reason beside each. Plain
// constants, so that host code (coverage, launch) and the kernel read the same numbers.
#pragma once

namespace an1::kernels::attention::sm90 {

struct Tiles {
  // Warpgroup 0 produces (one thread issues every TMA load); warpgroups 1 and 2 consume, each
  // owning 64 query rows (the M of one wgmma), so a block covers 128 query rows and each K/V
  // tile read from shared memory serves both (FlashAttention-3's split for head_dim <= 128).
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kThreads = (kConsumerWarpgroups + 1) * 128;
  static constexpr int kBlockM = 64 * kConsumerWarpgroups;
  // 128 keys per tile: S = Q K^T of one warpgroup is one m64n128 accumulator (64 registers a
  // thread), P V takes 8 k16 steps; a larger N would not leave registers for the next tile's S.
  static constexpr int kBlockN = 128;
  // Two K/V stages: at head_dim 128, Q, two K/V stages and the output tile take 192 KiB of the
  // 227 KiB a block may have; one block per SM.
  static constexpr int kStages = 2;
  // The 128-byte swizzle holds 64 16-bit elements per row: tiles are moved as 64-column boxes.
  static constexpr int kBoxColumns = 64;
  // setmaxnreg: the producer gives registers to the consumers (40 x 128 + 232 x 256 <= 64 K;
  // at 24 the producer spills its work-queue arithmetic).
  static constexpr int kProducerRegisters = 40;
  static constexpr int kConsumerRegisters = 232;
  // The paged source's producer walks page tables (and spills at 40): 56 x 128 + 224 x 256 is the
  // same 64 K.
  static constexpr int kPagedProducerRegisters = 56;
  static constexpr int kPagedConsumerRegisters = 224;
};

// Shared memory of one block: Q (kBlockM rows), kStages K and V tiles (kBlockN rows), the
// output tile (kBlockM rows), each as 64-column boxes; then the mbarriers; plus 1 KiB so the
// tiles can start on the 1024-byte boundary the swizzle needs.
constexpr int SharedMemoryBytes(int head_dim) {
  const int row_bytes = head_dim * 2;
  return (2 * Tiles::kBlockM + 2 * Tiles::kStages * Tiles::kBlockN) * row_bytes + 1024 + 1024;
}

}  // namespace an1::kernels::attention::sm90
