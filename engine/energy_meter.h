// Energy per request, from a GPU's energy counter (not from sampled power, which NVML averages
// over a second and which cannot resolve millisecond kernels).
//
// Reading the counter costs milliseconds (a driver round trip), so it is never read on a
// request's path: a sampler (StartSampling, or Sample() directly) reads it every few tens of
// milliseconds and shares each increase among the requests that ran in that interval, in
// proportion to how long each ran in it; energy drawn while no request ran (idle) is left out.
// A request that ends between two samples gets, for the part since the last sample, an estimate
// from the recent power while busy, split among the requests running with it; the next sample
// hands out only what the estimates did not already cover, and energy of a read that finds no
// request running goes to the next ones (unless a whole interval passes without any). Over many
// requests the shares add up to the counter's increase while the GPU was busy; a single short
// request's figure is an estimate.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace an1 {

class EnergyMeter {
 public:
  using Clock = std::chrono::steady_clock;
  // Reads the counter in joules (monotonic); nullopt when the read fails.
  using Reader = std::function<std::optional<double>()>;

  explicit EnergyMeter(Reader read);
  ~EnergyMeter();  // stops the sampler
  EnergyMeter(const EnergyMeter&) = delete;
  EnergyMeter& operator=(const EnergyMeter&) = delete;

  // Reads the counter every `period` on a thread of its own until destruction.
  void StartSampling(std::chrono::milliseconds period);

  // A request starts running; returns its token for End(). Never reads the counter.
  uint64_t Begin(Clock::time_point now = Clock::now());
  // The request ended: its share of the energy, in joules. Never reads the counter.
  double End(uint64_t token, Clock::time_point now = Clock::now());
  // Reads the counter and attributes its increase (what the sampler does each period). The
  // read's time is taken after the read returns (a read takes milliseconds; requests that began
  // or ended during it are then before it, never after).
  void Sample();
  // The same with the time of the read given (tests).
  void Sample(Clock::time_point now);
  // Joules counted from the first good read to the latest (nullopt: no good read yet).
  std::optional<double> JoulesSinceStart();

 private:
  struct Running {
    Clock::time_point start;
    double joules = 0;
  };
  // Reads the counter, then attributes at `given` (or the time the read returned).
  void SampleAt(std::optional<Clock::time_point> given);
  void AttributeLocked(Clock::time_point now, double counter);

  Reader read_;
  std::mutex mutex_;
  std::optional<double> first_, last_;  // counter at the first good and the latest good read
  Clock::time_point last_time_;
  Clock::time_point busy_since_;  // when the running set last became non-empty
  double busy_seconds_ = 0;       // time some request ran, from the last read to busy_since_
  double estimated_ = 0;          // joules handed out as estimates, not yet covered by a read
  double owed_ = 0;               // busy energy of a read that found no request running
  // Busy energy and busy time of the reads of about the last second: the power while requests
  // run, for the estimates (the counter moves in steps, so one period alone often says 0 W).
  struct Interval {
    Clock::time_point end;
    double joules, seconds;
  };
  std::deque<Interval> recent_;
  double busy_watts_ = 0;  // the latest such power, kept through idle stretches
  double BusyWattsLocked();
  std::unordered_map<uint64_t, Running> running_;
  uint64_t next_token_ = 1;

  std::thread sampler_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

}  // namespace an1
