// `an1 power`: the GPU energy per backend over a sustained run, from the server's energy
// counters read before and after it.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include "client/cli/bench.h"
#include "client/cli/energy.h"
#include "client/cli/load.h"

namespace an1::cli {

using Clock = std::chrono::steady_clock;

int RunPower(Client& client, const BenchFlags& flags) {
  if (!CheckTransport(flags.transport, flags.device)) return kExitError;
  // Each GPU's energy counter; false with the reason when none can be read.
  auto read_counters = [&](EnergyCounters* counters, std::string* why) {
    if (grpc::Status status = ReadEnergyCounters(client, counters, why); !status.ok()) {
      *why = std::string(StatusCodeName(status.error_code())) + ": " + status.error_message();
      return false;
    }
    return !counters->empty();
  };
  const Shape shape = ShapeFor(flags, flags.seq_lens.front());
  // attributed_J: the sum of the per-request energy in the responses, a check of the server's
  // attribution against the counter. Only the GPUs that ran the calls are counted.
  std::printf("%-9s %8s %9s %10s %9s %10s %12s %14s\n", "backend", "calls", "seconds", "joules",
              "avg_W", "J/call", "uJ/token", "attributed_J");
  std::map<v1::Backend, double> per_token;
  int failed = 0;
  for (v1::Backend backend : Backends(flags)) {
    EnergyCounters before, after;
    std::string why;
    if (!read_counters(&before, &why)) {
      std::cerr << "error: no GPU energy counter on the server: " << why << "\n";
      return 1;
    }
    std::fprintf(stderr, "%s: %g s of sustained calls from %d client(s)...\n", BackendName(backend),
                 flags.duration_seconds, flags.concurrency);
    // The counters are read once every client is set up and warmed up (all wait for it), and
    // after the last call: the window is the sustained run, gaps between calls included.
    Clock::time_point start;
    bool read_ok = true;
    const LoadResult load = RunLoad(client, flags, shape, backend, [&] {
      read_ok = read_counters(&before, &why);
      start = Clock::now();
    });
    if (load.setup_failed) {
      if (!load.setup_error.empty()) std::cerr << "error: " << load.setup_error << "\n";
      return 1;
    }
    if (!read_ok || !read_counters(&after, &why)) {
      std::cerr << "error: the GPU energy counter could not be read: " << why << "\n";
      return 1;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    double tokens = 0, attributed = 0, joules = 0;
    std::set<std::string> devices;
    for (const Sample& s : load.samples) {
      tokens += static_cast<double>(s.tokens);
      attributed += s.energy_joules.value_or(0);
      devices.insert(s.device);
    }
    for (const std::string& device : devices) {
      if (before.count(device) && after.count(device)) joules += after[device] - before[device];
    }
    const int calls = static_cast<int>(load.samples.size());
    const int errors = load.answered - calls;
    failed += errors;
    std::printf("%-9s %8d %9.2f %10.1f %9.1f ", BackendName(backend), calls, seconds, joules,
                seconds > 0 ? joules / seconds : 0.0);
    if (calls > 0 && tokens > 0) {
      per_token[backend] = joules / tokens;
      std::printf("%10.4f %12.3f %14.1f", joules / calls, per_token[backend] * 1e6, attributed);
    } else {
      std::printf("%10s %12s %14s", "-", "-", "-");
    }
    if (errors) std::printf("  (%d calls failed)", errors);
    std::printf("\n");
  }
  if (per_token.count(v1::BACKEND_AN1) && per_token.count(v1::BACKEND_BASELINE) &&
      per_token[v1::BACKEND_BASELINE] > 0) {
    std::printf("an1 uses %.1f%% less energy per token than baseline (%.3f vs %.3f uJ)\n",
                100.0 * (1.0 - per_token[v1::BACKEND_AN1] / per_token[v1::BACKEND_BASELINE]),
                per_token[v1::BACKEND_AN1] * 1e6, per_token[v1::BACKEND_BASELINE] * 1e6);
  }
  return failed ? 1 : 0;
}

}  // namespace an1::cli
