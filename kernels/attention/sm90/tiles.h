// Tile choices of the Hopper (sm90) attention kernel, with the reason beside each. Plain
// constants, so that host code (coverage, launch) and the kernel read the same numbers.
#pragma once

#include <cstdint>

namespace an1::kernels::attention::sm90 {

struct Tiles {
  // Warpgroup 0 produces (one thread issues every TMA load); warpgroups 1 and 2 consume, each
  // owning 64 query rows (the M of one wgmma), so a block covers 128 query rows and each K/V
  // tile read from shared memory serves both (FlashAttention-3's split for head_dim <= 128).
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kThreads = (kConsumerWarpgroups + 1) * 128;
  static constexpr int kBlockM = 64 * kConsumerWarpgroups;
  // 128 keys per tile (causal, head_dim 64, the paged source): S = Q K^T of one warpgroup is one
  // m64n128 accumulator (64 registers a thread), P V takes 8 k16 steps.
  static constexpr int kBlockN = 128;
  // Dense attention at head_dim 128 over long key sequences takes 176 keys a tile
  // (FlashAttention-3's choice): 88 accumulator registers, 11 P V steps, 37% more work per
  // barrier round trip and softmax reduction; shared memory then has no room for the output
  // tile, which is stored from registers. Measured against 128 on an H100 (fp16 and bf16):
  // equal at 4k keys, 3.5% faster at 16k, 3-7% slower at 2k and below, so from kWideMinKeys.
  static constexpr int kWideBlockN = 176;
  static constexpr int64_t kWideMinKeys = 8192;
  // Two K/V stages: at head_dim 128, Q, two K/V stages and the output tile take 192 KiB of the
  // 227 KiB a block may have; one block per SM.
  static constexpr int kStages = 2;
  // The 128-byte swizzle holds 64 16-bit elements per row: tiles are moved as 64-column boxes.
  static constexpr int kBoxColumns = 64;
  // setmaxnreg: the producer gives registers to the consumers (40 x 128 + 232 x 256 <= 64 K;
  // at 24 the producer spills its work-queue arithmetic).
  // (AN1_SM90_PRODUCER_REGISTERS / AN1_SM90_CONSUMER_REGISTERS override them for measuring.)
#ifndef AN1_SM90_PRODUCER_REGISTERS
#define AN1_SM90_PRODUCER_REGISTERS 40
#define AN1_SM90_CONSUMER_REGISTERS 232
#endif
  static constexpr int kProducerRegisters = AN1_SM90_PRODUCER_REGISTERS;
  static constexpr int kConsumerRegisters = AN1_SM90_CONSUMER_REGISTERS;
  static_assert(kProducerRegisters * 128 + kConsumerRegisters * 128 * kConsumerWarpgroups <= 65536);
  // The paged source's producer walks page tables (and spills at 40): 56 x 128 + 224 x 256 is the
  // same 64 K.
  static constexpr int kPagedProducerRegisters = 56;
  static constexpr int kPagedConsumerRegisters = 224;
};

// The keys per K/V tile of the (unpaged) kernel for a problem's head_dim, mask and kv_len.
constexpr int BlockN(int64_t head_dim, bool causal, int64_t kv_len) {
  return !causal && head_dim == 128 && kv_len >= Tiles::kWideMinKeys ? Tiles::kWideBlockN
                                                                     : Tiles::kBlockN;
}

// Whether the output tile goes through shared memory (by TMA) rather than from registers: not
// for the paged source (only a sequence's own rows may be written) nor with wide tiles (no room).
constexpr bool StoresOutputThroughSmem(int block_n, bool paged) {
  return !paged && block_n == Tiles::kBlockN;
}

// Shared memory of one block: Q (kBlockM rows), kStages K and V tiles (block_n rows), the
// output tile (kBlockM rows) when it goes through shared memory, each as 64-column boxes; then
// the mbarriers; plus 1 KiB so the tiles can start on the 1024-byte boundary the swizzle needs.
constexpr int SharedMemoryBytes(int head_dim, int block_n = Tiles::kBlockN, bool paged = false) {
  const int row_bytes = head_dim * 2;
  const int o_rows = StoresOutputThroughSmem(block_n, paged) ? Tiles::kBlockM : 0;
  return (Tiles::kBlockM + o_rows + 2 * Tiles::kStages * block_n) * row_bytes + 1024 + 1024;
}

}  // namespace an1::kernels::attention::sm90
