// GPU energy counters and bench's energy phase (energy.h).
#include "client/cli/energy.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "client/cli/summary.h"

namespace an1::cli {

grpc::Status ReadEnergyCounters(Client& client, EnergyCounters* counters, std::string* why) {
  counters->clear();
  why->clear();
  v1::GetServerInfoResponse info;
  grpc::Status status = client.Info(&info);
  if (!status.ok()) return status;
  for (const v1::DeviceInfo& d : info.devices()) {
    if (d.energy_available()) {
      (*counters)["cuda:" + std::to_string(d.index())] = d.energy_joules();
    } else {
      *why += (why->empty() ? "" : "; ") + std::string("device ") + std::to_string(d.index()) +
              ": " + d.energy_unavailable_reason();
    }
  }
  if (info.devices().empty()) {  // "serving on the CPU: GPU use disabled by configuration"
    *why = !info.gpu_mode() && !info.mode_reason().empty() ? info.mode_reason()
                                                           : "the server has no GPU";
  }
  return status;
}

EnergyPhase::EnergyPhase(Client& client, const BenchFlags& flags)
    : client_(client), flags_(flags), enabled_(flags.energy_seconds > 0) {
  if (!enabled_) return;
  EnergyCounters counters;
  std::string why;
  // An unreachable server fails the first case's warm-up with its own message; then nothing
  // is decided here.
  if (ReadEnergyCounters(client_, &counters, &why).ok() && counters.empty()) Skip(why);
}

void EnergyPhase::Skip(const std::string& why) {
  enabled_ = false;
  std::fprintf(stderr,
               "note: the server has no GPU energy counter (%s): skipping the --energy-seconds "
               "phase (%g s per case); uJ/token stays -\n",
               why.c_str(), flags_.energy_seconds);
}

std::optional<double> EnergyPhase::Measure(const Shape& shape, v1::Backend backend,
                                           const LoadResult& timed) {
  if (!enabled_ || timed.samples.empty()) return std::nullopt;
  const bool measured = std::any_of(timed.samples.begin(), timed.samples.end(),
                                    [](const Sample& s) { return s.energy_joules.has_value(); });
  if (!measured) {
    if (!said_) {
      std::fprintf(stderr,
                   "note: the server measured no energy for the calls of %s on %s: skipping "
                   "the --energy-seconds phase of such cases\n",
                   BackendName(backend), timed.samples.front().device.c_str());
      said_ = true;
    }
    return std::nullopt;
  }
  BenchFlags sustained = flags_;
  sustained.warmup = 1;
  sustained.duration_seconds = flags_.energy_seconds;
  return Summarize(RunLoad(client_, sustained, shape, backend), flags_, shape).joules_per_token;
}

}  // namespace an1::cli
