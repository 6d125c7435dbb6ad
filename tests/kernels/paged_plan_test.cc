// The paged attention planner (kernels/attention/decode/paged.h), a host function: which
// sequences of a ragged batch go to a prefill kernel (sm90 or sm80) and which to the decode
// kernel, and the metadata layout the kernels and the combine pass read.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/attention/decode/paged.h"

namespace an1::kernels::attention::decode {
namespace {

// An H200 as the planner sees it, but for the compute capability (0: not Hopper, so sm80).
cudaDeviceProp H200() {
  cudaDeviceProp device{};
  device.multiProcessorCount = 132;
  device.sharedMemPerMultiprocessor = 233472;
  device.sharedMemPerBlockOptin = 232448;
  return device;
}

PagedProblem Problem() {
  PagedProblem p;
  p.heads = 32, p.kv_heads = 8, p.head_dim = 128, p.page_size = 16;
  p.num_pages = 4096, p.max_pages_per_seq = 512;
  return p;
}

// q_len, kv_len of each sequence, packed in order.
std::vector<PagedSpan> Spans(std::initializer_list<std::pair<int64_t, int64_t>> lengths) {
  std::vector<PagedSpan> spans;
  int64_t q_start = 0;
  for (auto [q_len, kv_len] : lengths) {
    spans.push_back({q_start, q_len, kv_len});
    q_start += q_len;
  }
  return spans;
}

TEST(PagedPlanTest, CausalPrefillChunksGoToThePrefillKernelLongestFirst) {
  PagedProblem p = Problem();
  const auto spans = Spans({{17, 17}, {1, 5000}, {0, 10}, {512, 4096}, {16, 100}});
  p.batch = static_cast<int64_t>(spans.size());
  p.total_q = 17 + 1 + 512 + 16;
  const PagedPlan plan = PlanPaged(H200(), p, spans);
  // Query blocks of 128 rows per head: sequence 3 has 4, sequence 0 one.
  EXPECT_EQ(plan.prefill_blocks, 32 * (4 + 1));
  EXPECT_EQ(plan.prefill_work_offset % 4, 0);
  const int32_t* work = plan.metadata.data() + plan.prefill_work_offset;
  EXPECT_EQ(work[0], 3);  // the longest KV first, its last query block first
  EXPECT_EQ(work[2], 3);
  EXPECT_EQ(work[4 * 32 * 4], 0);  // then sequence 0
  const int32_t* splits = plan.metadata.data() + plan.splits_of_sequence_offset;
  EXPECT_EQ(splits[0], 0);  // prefill chunks and empty sequences have no decode splits
  EXPECT_EQ(splits[2], 0);
  EXPECT_EQ(splits[3], 0);
  EXPECT_GE(splits[1], 1);  // 1 query and 16 queries (speculative) stay in the decode kernel
  EXPECT_GE(splits[4], 1);
  // Decode blocks only for sequences 1 and 4: 8 KV heads x splits x row blocks.
  int64_t decode_blocks = 0;
  for (int64_t i = 0; i < plan.blocks; ++i) {
    const int32_t sequence = plan.metadata[static_cast<std::size_t>(4 * i)];
    EXPECT_TRUE(sequence == 1 || sequence == 4) << sequence;
    ++decode_blocks;
  }
  EXPECT_EQ(decode_blocks, 8 * splits[1] * 1 + 8 * splits[4] * 4);  // 16 x 4 rows: 4 blocks
  EXPECT_EQ(plan.sequence_of_row_offset, plan.blocks * 4);
  EXPECT_EQ(plan.metadata[static_cast<std::size_t>(plan.sequence_of_row_offset + 17)], 1);
  EXPECT_EQ(plan.label.substr(plan.label.size() - 5), "+sm80");
}

TEST(PagedPlanTest, WindowsSoftcapAndNonCausalStayInTheDecodeKernel) {
  const auto spans = Spans({{300, 300}, {1, 40}});
  for (int variant = 0; variant < 3; ++variant) {
    PagedProblem p = Problem();
    p.batch = 2, p.total_q = 301;
    if (variant == 0) p.window_left = 64;
    if (variant == 1) p.softcap = 30.0f;
    if (variant == 2) p.causal = false;
    const PagedPlan plan = PlanPaged(H200(), p, spans);
    EXPECT_EQ(plan.prefill_blocks, 0) << variant;
    EXPECT_EQ(plan.label.find("+sm80"), std::string::npos) << variant;
    EXPECT_EQ(plan.label.find("+sm90"), std::string::npos) << variant;
    const int32_t* splits = plan.metadata.data() + plan.splits_of_sequence_offset;
    EXPECT_GE(splits[0], 1) << variant;
  }
}

TEST(PagedPlanTest, HopperRunsPrefillChunksInTheSm90KernelFromPagesOf16) {
  const auto spans = Spans({{300, 1000}, {1, 40}, {1, 5000}});
  cudaDeviceProp hopper = H200();
  hopper.major = 9;
  for (int64_t page_size : {1, 8, 16, 256}) {
    PagedProblem p = Problem();
    p.page_size = page_size;
    p.batch = 3, p.total_q = 302;
    const PagedPlan plan = PlanPaged(hopper, p, spans);
    EXPECT_EQ(plan.prefill_blocks, 32 * 3) << page_size;
    const bool sm90 = page_size >= 16;
    EXPECT_EQ(plan.prefill_sm90, sm90) << page_size;
    EXPECT_EQ(plan.label.substr(plan.label.size() - 5), sm90 ? "+sm90" : "+sm80") << page_size;
    if (sm90) {  // the queue after the decode splits' partials, 256-byte aligned
      EXPECT_EQ(plan.prefill_queue_offset % 256, 0u);
      EXPECT_GE(plan.workspace_bytes, plan.prefill_queue_offset + 16);
      EXPECT_GT(plan.max_splits, 1);
      EXPECT_GT(plan.prefill_queue_offset, 0u);  // the partials come first
    }
  }
}

}  // namespace
}  // namespace an1::kernels::attention::decode
