// DeviceQueue: one device's bounded queue of admitted requests and the executor threads that
// take them off it (one per CUDA stream on a GPU, --executor-threads on the CPU).
//
// Thread-safety: every method may be called from any thread. Ownership: queued jobs are owned by
// the queue until an executor takes them or they are withdrawn.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/device_id.h"
#include "engine/request.h"

namespace an1 {

// An admitted request.
struct Job {
  PreparedRequest request;
  OutputProvider output;
  RequestControl control;
  DoneCallback done;
  std::size_t bytes = 0;  // counted against the engine's in-flight byte budget
  std::chrono::steady_clock::time_point admitted;
};

class DeviceQueue {
 public:
  // Runs one job on executor `slot` (0 .. executors - 1).
  using Runner = std::function<void(Job& job, int slot)>;

  // `max_depth` jobs may wait; idle executors poll for `spin` before they sleep (waking a
  // sleeping thread costs tens of microseconds, the service overhead of a CUDA IPC request).
  DeviceQueue(DeviceId device, int max_depth, std::chrono::microseconds spin);
  ~DeviceQueue();  // Drain()s.
  DeviceQueue(const DeviceQueue&) = delete;
  DeviceQueue& operator=(const DeviceQueue&) = delete;

  // Starts `executors` threads calling `run` for each job. Once only.
  void Start(int executors, Runner run);
  // Queues `job`; RESOURCE_EXHAUSTED (the job is handed back in *job) when `max_depth` wait.
  Status Push(Job* job);
  // Takes out the queued jobs whose caller is gone (cancelled, or past the deadline).
  std::vector<Job> TakeAbandoned();
  // Takes out the queued job with this cancelled flag, if it is still waiting.
  std::optional<Job> Withdraw(const std::shared_ptr<std::atomic<bool>>& cancelled);
  // Lets the executors finish every queued job, then joins them. Idempotent.
  void Drain();

  DeviceId device() const { return device_; }
  int depth() const;    // jobs waiting
  int running() const;  // jobs executing
  int load() const;     // waiting + executing, for choosing the least-loaded device
  int executors() const { return static_cast<int>(executors_.size()); }
  // The sum of `seconds` over the jobs waiting (not those executing): the work queued ahead of
  // a job pushed now (deadline admission, engine.cc).
  double WaitingSeconds(const std::function<double(const Job&)>& seconds) const;

 private:
  void ExecutorLoop(int slot);

  const DeviceId device_;
  const int max_depth_;
  const std::chrono::microseconds spin_;
  Runner run_;
  mutable std::mutex mutex_;  // guards queue_, running_, draining_
  std::condition_variable work_available_;
  std::deque<Job> queue_;
  std::atomic<int> pending_{0};  // queue_.size(), readable without the lock by polling executors
  int running_ = 0;
  bool draining_ = false;
  std::mutex drain_mutex_;
  std::vector<std::thread> executors_;
};

}  // namespace an1
