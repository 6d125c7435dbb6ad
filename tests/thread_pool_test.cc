// ThreadPool on its own: every iteration runs once, failures become statuses, and a loop of one
// iteration runs on the calling thread without waking a worker.
#include "engine/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace an1 {
namespace {

TEST(ThreadPoolTest, EveryIterationRunsOnce) {
  ThreadPool pool(3);
  for (int64_t count : {1, 2, 3, 4, 17, 1000}) {
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(count));
    ASSERT_TRUE(pool.ParallelFor(count, [&](int64_t i) { runs[i].fetch_add(1); }).ok());
    for (int64_t i = 0; i < count; ++i) EXPECT_EQ(runs[i].load(), 1) << count << " " << i;
  }
  EXPECT_TRUE(pool.ParallelFor(0, [](int64_t) { FAIL(); }).ok());
}

TEST(ThreadPoolTest, OneIterationRunsOnTheCallingThread) {
  ThreadPool pool(3);
  std::thread::id ran_on;
  ASSERT_TRUE(pool.ParallelFor(1, [&](int64_t) { ran_on = std::this_thread::get_id(); }).ok());
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(ThreadPoolTest, ManyIterationsUseTheWorkers) {
  ThreadPool pool(3);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<int> waiting{0};
  // Each of the four iterations waits (briefly) for the others, so they must run at once.
  ASSERT_TRUE(pool.ParallelFor(4,
                               [&](int64_t) {
                                 {
                                   std::lock_guard lock(mutex);
                                   threads.insert(std::this_thread::get_id());
                                 }
                                 waiting.fetch_add(1);
                                 for (int spin = 0; waiting.load() < 4 && spin < 2000; ++spin) {
                                   std::this_thread::sleep_for(std::chrono::milliseconds(1));
                                 }
                               })
                  .ok());
  EXPECT_EQ(threads.size(), 4u);
}

TEST(ThreadPoolTest, FailuresBecomeStatuses) {
  ThreadPool pool(2);
  for (int64_t count : {1, 5}) {
    const Status oom = pool.ParallelFor(count, [](int64_t i) {
      if (i == 0) throw std::bad_alloc();
    });
    EXPECT_EQ(oom.code(), StatusCode::kResourceExhausted) << count;
    const Status other = pool.ParallelFor(count, [](int64_t i) {
      if (i == 0) throw std::runtime_error("boom");
    });
    EXPECT_EQ(other.code(), StatusCode::kInternal) << count;
  }
}

}  // namespace
}  // namespace an1
