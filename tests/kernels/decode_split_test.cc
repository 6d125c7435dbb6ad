// The decode kernel's split rule (kernels/attention/decode/tiles.h), a pure host function: no
// split once the blocks fill the GPU in whole waves, splits that even the waves out otherwise,
// never an empty split.
#include <gtest/gtest.h>

#include "kernels/attention/decode/tiles.h"

namespace an1::kernels::attention::decode {
namespace {

constexpr int kSms = 132, kBlocksPerSm = 2;  // an H200 / H100 SXM at head_dim 128

TEST(DecodeSplitTest, ABatchThatFillsTheGpuIsNotSplit) {
  const Split s = ChooseSplit(64, 8, 4, 4096, kSms, kBlocksPerSm);  // B=64, 32/8 heads, Sq=1
  EXPECT_EQ(s.units, 512);
  EXPECT_EQ(s.splits, 1);
  EXPECT_EQ(s.tiles_per_split, 64);
}

TEST(DecodeSplitTest, OneLongSequenceIsSplitToFillTheGpu) {
  const Split s = ChooseSplit(1, 8, 4, 131072, kSms, kBlocksPerSm);  // B=1, Sk=128k
  EXPECT_EQ(s.units, 8);
  EXPECT_GE(s.units * s.splits, 0.85 * kSms * kBlocksPerSm);
  EXPECT_LE(s.units * s.splits, kSms * kBlocksPerSm);
  EXPECT_LE(s.splits, Tiles::kMaxSplits);
}

TEST(DecodeSplitTest, OneLongSequenceFillsEverySlotOnce) {
  const Split s = ChooseSplit(1, 8, 4, 131072, kSms, kBlocksPerSm);
  EXPECT_EQ(s.units * s.splits, kSms * kBlocksPerSm);  // 8 x 33 = 264: one full wave
}

TEST(DecodeSplitTest, ABatchThatWouldLeaveMostOfASecondWaveIdleIsSplit) {
  // 300 blocks on 264 slots: a second wave of 36 would take as long as the first.
  const Split s = ChooseSplit(75, 4, 4, 4096, kSms, kBlocksPerSm);
  EXPECT_EQ(s.units, 300);
  EXPECT_GT(s.splits, 1);
  EXPECT_LE(s.splits, 8);
}

TEST(DecodeSplitTest, SplitsAreNeverEmptyAndCoverEveryTile) {
  for (int64_t kv_len : {1, 63, 64, 65, 127, 129, 1000, 4099, 131075}) {
    for (int64_t batch : {1, 3, 300}) {
      const Split s = ChooseSplit(batch, 1, 5, kv_len, kSms, kBlocksPerSm);
      EXPECT_GE(s.splits, 1);
      EXPECT_EQ(s.tiles, (kv_len + Tiles::kBlockN - 1) / Tiles::kBlockN);
      EXPECT_GE(s.tiles_per_split * s.splits, s.tiles) << kv_len;
      EXPECT_LT(s.tiles_per_split * (s.splits - 1), s.tiles) << kv_len;  // the last one has work
      if (s.splits > 1) EXPECT_GE(s.tiles_per_split, 2) << kv_len;
    }
  }
}

TEST(DecodeSplitTest, PackedRowsMakeRowBlocks) {
  EXPECT_EQ(ChooseSplit(1, 1, 16, 64, kSms, kBlocksPerSm).row_blocks, 1);
  EXPECT_EQ(ChooseSplit(1, 1, 17, 64, kSms, kBlocksPerSm).row_blocks, 2);
  EXPECT_EQ(ChooseSplit(1, 1, 5 * 16, 64, kSms, kBlocksPerSm).row_blocks, 5);
}

}  // namespace
}  // namespace an1::kernels::attention::decode
