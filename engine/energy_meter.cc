#include "engine/energy_meter.h"

#include <algorithm>

namespace an1 {

EnergyMeter::EnergyMeter(Reader read) : read_(std::move(read)) {
  std::lock_guard lock(mutex_);
  last_time_ = Clock::now();
  first_ = last_ = read_();
}

uint64_t EnergyMeter::Begin(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (running_.empty()) busy_since_ = now;
  const uint64_t token = next_token_++;
  running_[token] = {now, 0};
  return token;
}

double EnergyMeter::End(uint64_t token, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (const std::optional<double> counter = read_()) AttributeLocked(now, *counter);
  auto it = running_.find(token);
  if (it == running_.end()) return 0;
  const double joules = it->second.joules;
  running_.erase(it);
  return joules;
}

std::optional<double> EnergyMeter::JoulesSinceStart(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const std::optional<double> counter = read_();
  if (!counter) return std::nullopt;
  AttributeLocked(now, *counter);
  return *counter - *first_;
}

void EnergyMeter::AttributeLocked(Clock::time_point now, double counter) {
  if (!last_) {  // every earlier read failed: start counting here
    first_ = last_ = counter;
    last_time_ = now;
    return;
  }
  const double increase = std::max(0.0, counter - *last_);
  const double interval = std::chrono::duration<double>(now - last_time_).count();
  if (!running_.empty() && increase > 0 && interval > 0) {
    // The part of the interval in which some request ran gets that part of the energy.
    const auto busy_from = std::max(busy_since_, last_time_);
    const double busy = std::chrono::duration<double>(now - busy_from).count();
    const double attributed = increase * std::clamp(busy / interval, 0.0, 1.0);
    double weights = 0;
    for (const auto& [token, r] : running_) {
      weights += std::chrono::duration<double>(now - std::max(r.start, last_time_)).count();
    }
    if (weights > 0) {
      for (auto& [token, r] : running_) {
        const double ran = std::chrono::duration<double>(now - std::max(r.start, last_time_)).count();
        r.joules += attributed * ran / weights;
      }
    }
  }
  last_ = counter;
  last_time_ = now;
}

}  // namespace an1
