// GPU energy for `an1 bench` and `an1 power`: the server's energy counters (GetServerInfo), and
// bench's energy phase, which gets the energy per token from a sustained run of each case.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "client/cli/load.h"

namespace an1::cli {

// Each GPU's energy counter: "cuda:N" -> joules since the server started.
using EnergyCounters = std::map<std::string, double>;

// Reads the server's GPU energy counters. On an OK status `counters` holds every GPU that has
// one, and `why` says why the others have none ("serving on the CPU: ...", "device 1: ...").
grpc::Status ReadEnergyCounters(Client& client, EnergyCounters* counters, std::string* why);

// bench's energy phase. The energy counter moves in steps of tens of milliseconds and is sampled
// by the server every few tens: a few short calls cannot be told apart, so the energy per token
// comes from a sustained run of its own (--energy-seconds), from the per-request energy the
// server returns. Skipped, and said so once on stderr, when the server has no GPU energy counter
// or measured none of a case's timed calls: there would be nothing to measure.
class EnergyPhase {
 public:
  // Asks the server once whether it has an energy counter (when --energy-seconds > 0).
  EnergyPhase(Client& client, const BenchFlags& flags);

  // Seconds the phase will take per case (0 when skipped).
  double seconds() const { return enabled_ ? flags_.energy_seconds : 0; }

  // The energy per token of `backend` on `shape`; nullopt when skipped or not measured.
  // `timed` is the case's timed run (if the server measured none of its calls, neither will it
  // measure the sustained ones).
  std::optional<double> Measure(const Shape& shape, v1::Backend backend, const LoadResult& timed);

 private:
  void Skip(const std::string& why);

  Client& client_;
  const BenchFlags& flags_;
  bool enabled_ = false;
  bool said_ = false;  // the note about a case without energy was printed
};

}  // namespace an1::cli
