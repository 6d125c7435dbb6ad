// A fixed pool of worker threads for data-parallel loops.
//
// Thread-safe: several threads may call ParallelFor at once; each call's iterations are shared
// among the pool and the calling thread, and a call wakes at most one worker per iteration beyond
// the first (a single iteration runs on the calling thread alone). Destroying the pool joins its
// threads; no ParallelFor may be running then.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/status.h"

namespace an1 {

class ThreadPool {
 public:
  // `threads` workers besides the callers; 0 means hardware_concurrency() - 1.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs body(i) for every i in [0, count) and returns when all have finished. Returns OK, or
  // RESOURCE_EXHAUSTED if an iteration ran out of memory, or INTERNAL if one threw anything
  // else (the remaining iterations still run; `body` should not throw in normal operation).
  Status ParallelFor(int64_t count, const std::function<void(int64_t)>& body);

  int size() const { return static_cast<int>(workers_.size()); }

 private:
  void WorkerLoop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace an1
