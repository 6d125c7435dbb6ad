#include "engine/device_queue.h"

#include <algorithm>

namespace an1 {

DeviceQueue::DeviceQueue(DeviceId device, int max_depth, std::chrono::microseconds spin)
    : device_(device), max_depth_(max_depth), spin_(spin) {}

DeviceQueue::~DeviceQueue() { Drain(); }

void DeviceQueue::Start(int executors, Runner run) {
  run_ = std::move(run);
  for (int slot = 0; slot < executors; ++slot) {
    executors_.emplace_back([this, slot] { ExecutorLoop(slot); });
  }
}

Status DeviceQueue::Push(Job* job) {
  {
    std::lock_guard lock(mutex_);
    if (draining_) return UnavailableError("the server is shutting down");
    if (static_cast<int>(queue_.size()) >= max_depth_) {
      return ResourceExhaustedError("the request queue of " + device_.ToString() + " is full (" +
                                    std::to_string(max_depth_) + " waiting); retry later");
    }
    job->admitted = std::chrono::steady_clock::now();
    queue_.push_back(std::move(*job));
    pending_.fetch_add(1, std::memory_order_release);
  }
  work_available_.notify_one();
  return OkStatus();
}

std::vector<Job> DeviceQueue::TakeAbandoned() {
  std::vector<Job> abandoned;
  std::lock_guard lock(mutex_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->control.StopReason("").ok()) {
      ++it;
      continue;
    }
    abandoned.push_back(std::move(*it));
    it = queue_.erase(it);
    pending_.fetch_sub(1, std::memory_order_relaxed);
  }
  return abandoned;
}

std::optional<Job> DeviceQueue::Withdraw(const std::shared_ptr<std::atomic<bool>>& cancelled) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const Job& job) { return job.control.cancelled == cancelled; });
  if (it == queue_.end()) return std::nullopt;
  std::optional<Job> job(std::move(*it));
  queue_.erase(it);
  pending_.fetch_sub(1, std::memory_order_relaxed);
  return job;
}

void DeviceQueue::Drain() {
  std::lock_guard drain_lock(drain_mutex_);  // concurrent callers wait for the first to finish
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
  }
  work_available_.notify_all();
  for (std::thread& t : executors_) {
    if (t.joinable()) t.join();
  }
  executors_.clear();
}

int DeviceQueue::depth() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(queue_.size());
}

int DeviceQueue::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

double DeviceQueue::WaitingSeconds(const std::function<double(const Job&)>& seconds) const {
  std::lock_guard lock(mutex_);
  double total = 0;
  for (const Job& job : queue_) total += seconds(job);
  return total;
}

int DeviceQueue::load() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(queue_.size()) + running_;
}

void DeviceQueue::ExecutorLoop(int slot) {
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + spin_;
    while (pending_.load(std::memory_order_acquire) == 0 &&
           std::chrono::steady_clock::now() < spin_until) {
      std::this_thread::yield();
    }
    Job job;
    {
      std::unique_lock lock(mutex_);
      work_available_.wait(lock, [&] { return draining_ || !queue_.empty(); });
      if (queue_.empty()) return;  // draining and nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      pending_.fetch_sub(1, std::memory_order_relaxed);
      ++running_;
    }
    run_(job, slot);
    std::lock_guard lock(mutex_);
    --running_;
  }
}

}  // namespace an1
