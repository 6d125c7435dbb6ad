#include "engine/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <new>

namespace an1 {
namespace {

// State of one ParallelFor call, shared with the helper tasks that may outlive the call.
struct LoopState {
  int64_t count = 0;
  const std::function<void(int64_t)>* body = nullptr;  // valid while finished < count
  std::atomic<int64_t> next{0};
  std::atomic<int> failure{0};  // 0 none, 1 out of memory, 2 other exception
  std::mutex mutex;
  std::condition_variable all_done;
  int64_t finished = 0;

  // Claims and runs iterations until none are left.
  void Drain() {
    int64_t done_here = 0;
    for (int64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      try {
        (*body)(i);
      } catch (const std::bad_alloc&) {
        failure.store(1);
      } catch (...) {
        failure.store(2);
      }
      ++done_here;
    }
    if (done_here == 0) return;
    std::lock_guard lock(mutex);
    finished += done_here;
    if (finished == count) all_done.notify_all();
  }
};

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency()) - 1;
  workers_.reserve(threads);
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping and nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

Status ThreadPool::ParallelFor(int64_t count, const std::function<void(int64_t)>& body) {
  if (count <= 0) return OkStatus();
  // Helpers for the iterations beyond the caller's first: none for a single iteration, which then
  // runs on the calling thread waking nobody (waking an idle worker that would find nothing to do
  // costs tens of microseconds in a VM, an IPI, more than a small request's whole computation).
  const int64_t helpers = std::min<int64_t>(count - 1, static_cast<int64_t>(workers_.size()));
  auto state = std::make_shared<LoopState>();
  state->count = count;
  state->body = &body;
  int64_t queued = 0;
  if (helpers > 0) {
    std::lock_guard lock(mutex_);
    try {
      for (; queued < helpers; ++queued) tasks_.emplace_back([state] { state->Drain(); });
    } catch (const std::bad_alloc&) {
      // Fewer helpers: the caller drains the rest itself below, and waits as usual.
    }
  }
  // One worker woken per helper task queued, not every idle worker.
  for (int64_t i = 0; i < queued; ++i) wake_.notify_one();
  state->Drain();
  {
    std::unique_lock lock(state->mutex);
    state->all_done.wait(lock, [&] { return state->finished == count; });
  }
  switch (state->failure.load()) {
    case 0:
      return OkStatus();
    case 1:
      return ResourceExhaustedError("out of host memory");
    default:
      return InternalError("a compute task failed");
  }
}

}  // namespace an1
