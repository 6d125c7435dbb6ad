#include "engine/energy_meter.h"

#include <algorithm>

namespace an1 {
namespace {

// A duration in seconds, never negative (timestamps taken on different threads may cross).
double Seconds(EnergyMeter::Clock::duration d) {
  return std::max(0.0, std::chrono::duration<double>(d).count());
}

}  // namespace

EnergyMeter::EnergyMeter(Reader read) : read_(std::move(read)) {
  const std::optional<double> counter = read_();
  std::lock_guard lock(mutex_);
  last_time_ = Clock::now();
  first_ = last_ = counter;
}

EnergyMeter::~EnergyMeter() {
  {
    std::lock_guard lock(stop_mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

void EnergyMeter::StartSampling(std::chrono::milliseconds period) {
  sampler_ = std::thread([this, period] {
    std::unique_lock lock(stop_mutex_);
    while (!stop_cv_.wait_for(lock, period, [this] { return stop_; })) {
      lock.unlock();
      Sample();
      lock.lock();
    }
  });
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
  auto it = running_.find(token);
  if (it == running_.end()) return 0;
  // Since the last read: the recent power while busy, shared with the requests running now.
  const double since_read = std::max(0.0, Seconds(now - std::max(it->second.start, last_time_)));
  const double estimate = since_read * BusyWattsLocked() / static_cast<double>(running_.size());
  estimated_ += estimate;
  const double joules = it->second.joules + estimate;
  running_.erase(it);
  if (running_.empty()) busy_seconds_ += Seconds(now - std::max(busy_since_, last_time_));
  return joules;
}

void EnergyMeter::Sample() { SampleAt(std::nullopt); }

void EnergyMeter::Sample(Clock::time_point now) { SampleAt(now); }

void EnergyMeter::SampleAt(std::optional<Clock::time_point> given) {
  const std::optional<double> counter = read_();  // slow: outside the lock
  if (!counter) return;
  const Clock::time_point now = given.value_or(Clock::now());  // after the read, see the header
  std::lock_guard lock(mutex_);
  AttributeLocked(std::max(now, last_time_), *counter);
}

std::optional<double> EnergyMeter::JoulesSinceStart() {
  std::lock_guard lock(mutex_);
  if (!first_ || !last_) return std::nullopt;
  return *last_ - *first_;
}

double EnergyMeter::BusyWattsLocked() {
  double joules = 0, seconds = 0;
  for (const Interval& i : recent_) {
    joules += i.joules;
    seconds += i.seconds;
  }
  if (seconds >= 0.02) busy_watts_ = joules / seconds;  // else: too little busy time to tell
  return busy_watts_;
}

void EnergyMeter::AttributeLocked(Clock::time_point now, double counter) {
  if (!last_) {  // every earlier read failed: start counting here
    first_ = last_ = counter;
    last_time_ = now;
    return;
  }
  const double increase = std::max(0.0, counter - *last_);
  const double interval = Seconds(now - last_time_);
  // The part of the interval in which some request ran gets that part of the energy; what
  // estimates already handed out is not handed out twice (an excess is carried forward).
  const bool busy_now = !running_.empty();
  const double busy =
      busy_seconds_ + (busy_now ? Seconds(now - std::max(busy_since_, last_time_)) : 0);
  const double busy_energy = interval > 0 ? increase * std::clamp(busy / interval, 0.0, 1.0) : 0;
  const double available = busy_energy + owed_;
  const double to_share = std::max(0.0, available - estimated_);
  estimated_ = std::max(0.0, estimated_ - available);
  double weights = 0;
  for (const auto& [token, r] : running_) weights += Seconds(now - std::max(r.start, last_time_));
  if (weights > 0) {
    for (auto& [token, r] : running_) {
      r.joules += to_share * Seconds(now - std::max(r.start, last_time_)) / weights;
    }
    owed_ = 0;
  } else if (busy > 0) {
    owed_ = to_share;  // the requests of this interval were answered already: the next ones
  } else {
    // A whole interval without requests: what is left belongs to work long answered, not to
    // whatever comes next (another client, another backend).
    owed_ = 0;
    estimated_ = 0;
  }
  busy_seconds_ = 0;
  recent_.push_back({now, busy_energy, busy});
  while (!recent_.empty() && Seconds(now - recent_.front().end) > 1.0) recent_.pop_front();
  last_ = counter;
  last_time_ = now;
}

}  // namespace an1
