#include "engine/cpu_parallel.h"

#include <atomic>
#include <mutex>

namespace an1 {

Status StoppableParallelFor(ThreadPool& pool, int64_t count, const ExecutionContext& context,
                            const std::function<void(int64_t)>& body) {
  std::atomic<bool> stopped{false};
  std::mutex mutex;
  Status why;
  Status status = pool.ParallelFor(count, [&](int64_t i) {
    if (stopped.load(std::memory_order_relaxed)) return;
    if (context.should_stop) {
      Status stop = context.should_stop();
      if (!stop.ok()) {
        std::lock_guard lock(mutex);
        if (!stopped.exchange(true)) why = std::move(stop);
        return;
      }
    }
    body(i);
  });
  if (!status.ok()) return status;
  return stopped.load() ? why : OkStatus();
}

}  // namespace an1
