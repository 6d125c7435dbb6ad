// Energy per request, from a GPU's energy counter (not from sampled power, which NVML averages
// over a second and which cannot resolve millisecond kernels).
//
// Each time a request finishes, the counter is read and its increase since the previous read is
// shared among the requests that were running in that interval, in proportion to how long each
// ran in it; energy drawn while no request ran (idle) is left out. The counter only moves in
// steps, so one short request's figure is coarse, but over many requests the shares add up to the
// counter's increase while the GPU was busy.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace an1 {

class EnergyMeter {
 public:
  using Clock = std::chrono::steady_clock;
  // Reads the counter in joules (monotonic); nullopt when the read fails.
  using Reader = std::function<std::optional<double>()>;

  explicit EnergyMeter(Reader read);

  // A request starts running; returns its token for End().
  uint64_t Begin(Clock::time_point now = Clock::now());
  // The request ended: its share of the energy, in joules (0 if every read failed).
  double End(uint64_t token, Clock::time_point now = Clock::now());
  // Joules counted since this meter was made (reads the counter; attributes like End()).
  std::optional<double> JoulesSinceStart(Clock::time_point now = Clock::now());

 private:
  struct Running {
    Clock::time_point start;
    double joules = 0;
  };
  // Shares the counter's increase since the last read among the running requests.
  void AttributeLocked(Clock::time_point now, double counter);

  Reader read_;
  std::mutex mutex_;
  std::optional<double> first_, last_;  // counter at the first and the latest read
  Clock::time_point last_time_;
  Clock::time_point busy_since_;  // when the running set last became non-empty
  std::unordered_map<uint64_t, Running> running_;
  uint64_t next_token_ = 1;
};

}  // namespace an1
