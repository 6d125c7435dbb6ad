// DeviceQueue on its own: bounded admission, executors that drain it, withdrawal of one job and
// of every job whose caller is gone.
#include "engine/device_queue.h"

#include <gtest/gtest.h>

#include <future>

namespace an1 {
namespace {

Job MakeJob(std::shared_ptr<std::atomic<bool>> cancelled = nullptr) {
  Job job;
  job.control.cancelled = std::move(cancelled);
  return job;
}

TEST(DeviceQueueTest, BoundedDepthAndDrainRunsEverything) {
  DeviceQueue queue(DeviceId::Cpu(), 2, std::chrono::microseconds(0));
  for (int i = 0; i < 2; ++i) {
    Job job = MakeJob();
    ASSERT_TRUE(queue.Push(&job).ok());
  }
  Job third = MakeJob();
  const Status full = queue.Push(&third);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("queue of cpu is full"), std::string::npos);
  EXPECT_EQ(queue.depth(), 2);
  std::atomic<int> ran{0};
  queue.Start(1, [&](Job&, int slot) {
    EXPECT_EQ(slot, 0);
    ran.fetch_add(1);
  });
  queue.Drain();
  EXPECT_EQ(ran.load(), 2);
  Job late = MakeJob();
  EXPECT_EQ(queue.Push(&late).code(), StatusCode::kUnavailable);
}

TEST(DeviceQueueTest, WithdrawAndTakeAbandoned) {
  DeviceQueue queue(DeviceId::Cuda(0), 8, std::chrono::microseconds(0));
  auto gone = std::make_shared<std::atomic<bool>>(false);
  auto stays = std::make_shared<std::atomic<bool>>(false);
  for (auto flag : {gone, stays}) {
    Job job = MakeJob(flag);
    ASSERT_TRUE(queue.Push(&job).ok());
  }
  Job expired = MakeJob();
  expired.control.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  ASSERT_TRUE(queue.Push(&expired).ok());
  EXPECT_EQ(queue.depth(), 3);

  std::optional<Job> withdrawn = queue.Withdraw(gone);
  ASSERT_TRUE(withdrawn.has_value());
  EXPECT_EQ(withdrawn->control.cancelled, gone);
  EXPECT_FALSE(queue.Withdraw(gone).has_value());  // only once
  EXPECT_EQ(queue.depth(), 2);

  std::vector<Job> abandoned = queue.TakeAbandoned();  // the expired one; `stays` stays
  ASSERT_EQ(abandoned.size(), 1u);
  EXPECT_EQ(queue.depth(), 1);
  stays->store(true);
  EXPECT_EQ(queue.TakeAbandoned().size(), 1u);
  EXPECT_EQ(queue.depth(), 0);
}

}  // namespace
}  // namespace an1
