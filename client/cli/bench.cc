// `an1 bench`: the timed sweep. For each sequence length and backend (a case), a load run of
// --iters timed calls (or --duration), then the energy phase; one table row per case on stdout,
// progress on stderr, and at the end the CSV rows and the plot.
#include "client/cli/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>

#include "client/cli/csv.h"
#include "client/cli/energy.h"
#include "client/cli/load.h"
#include "client/cli/plot.h"
#include "client/cli/summary.h"

namespace an1::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Progress on stderr, one line as a case starts and one as it ends: a sweep of large shapes
// runs for minutes.
class Progress {
 public:
  Progress(const BenchFlags& flags, double energy_seconds)
      : flags_(flags),
        energy_seconds_(energy_seconds),
        total_(flags.seq_lens.size() * Backends(flags).size()) {}

  void Start(v1::Backend backend, int64_t seq_len) {
    ++index_;
    start_ = Clock::now();
    std::string calls = flags_.duration_seconds > 0
                            ? FormatNumber(flags_.duration_seconds, 1) + " s of calls"
                            : std::to_string(flags_.iters) + " timed calls";
    if (flags_.concurrency > 1) {
      calls += " from each of " + std::to_string(flags_.concurrency) + " clients";
    }
    if (energy_seconds_ > 0)
      calls += ", then " + FormatNumber(energy_seconds_, 1) + " s for energy";
    std::fprintf(stderr, "case %zu/%zu: %s, seq_len %lld, %s: %d warm-up + %s ...\n", index_,
                 total_, BackendName(backend), static_cast<long long>(seq_len),
                 flags_.causal ? "causal" : "dense", std::max(flags_.warmup, 1), calls.c_str());
  }

  // `kernels`: what ran the calls (Summary::kernels), said when known.
  void End(v1::Backend backend, int64_t seq_len, const char* outcome,
           const std::string& kernels = "") {
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
    std::fprintf(stderr, "case %zu/%zu: %s, seq_len %lld: %s in %.0f ms%s%s\n", index_, total_,
                 BackendName(backend), static_cast<long long>(seq_len), outcome, ms,
                 kernels.empty() ? "" : ", kernel ", kernels.c_str());
  }

 private:
  const BenchFlags& flags_;
  const double energy_seconds_;
  const std::size_t total_;
  std::size_t index_ = 0;
  Clock::time_point start_;
};

}  // namespace

int RunBench(Client& client, const BenchFlags& flags) {
  // The plot's path goes into a shell command and a gnuplot script, both quoted with '.
  if (flags.plot.find_first_of("'\\\n") != std::string::npos) {
    return UsageError("--plot: a path without quotes, backslashes or newlines, please");
  }
  if (!CheckTransport(flags.transport, flags.device)) return kExitError;
  EnergyPhase energy(client, flags);
  Progress progress(flags, energy.seconds());
  std::printf("%-9s %7s %10s %9s %9s %9s %9s %10s %12s %12s %s\n", "backend", "seq_len",
              "latency_ms", "p99_ms", "TFLOP/s", "dense", "e2e_ms", "server_ms", "tokens/s",
              "uJ/token", "requests (errors)");
  std::fflush(stdout);
  std::vector<std::string> rows;
  SweepResults results;
  int failures = 0;
  for (int64_t seq : flags.seq_lens) {
    const Shape shape = ShapeFor(flags, seq);
    std::map<v1::Backend, Summary> by_backend;
    for (v1::Backend backend : Backends(flags)) {
      progress.Start(backend, seq);
      const LoadResult load = RunLoad(client, flags, shape, backend);
      if (load.setup_failed) {
        // Asked for by name: an error. Run by default (both backends): said, and skipped.
        const bool asked = backend == v1::BACKEND_AN1 ? flags.an1 : flags.baseline;
        if (asked || load.setup_error.empty()) {
          progress.End(backend, seq, "failed");
          if (!load.setup_error.empty()) std::cerr << "error: " << load.setup_error << "\n";
          return kExitError;
        }
        progress.End(backend, seq, "skipped");
        std::printf("%-9s %7lld skipped: %s\n", BackendName(backend), static_cast<long long>(seq),
                    load.setup_error.c_str());
        std::fflush(stdout);
        continue;
      }
      if (load.sent != load.answered) {  // cannot happen with blocking calls; checked anyway
        std::cerr << "error: " << load.sent << " requests sent, " << load.answered << " answered\n";
        return kExitError;
      }
      Summary s = Summarize(load, flags, shape);
      s.joules_per_token = energy.Measure(shape, backend, load);
      progress.End(backend, seq, "done", s.kernels);
      failures += s.errors;
      std::printf("%-9s %7lld %10.3f %9.3f %9.1f %9.1f %9.3f %10.3f %12.0f %12s %d (%d%s%s)\n",
                  BackendName(backend), static_cast<long long>(seq), s.latency_ms, s.p99_ms,
                  s.tflops, s.tflops_dense, s.e2e_ms, s.server_ms, s.tokens_per_s,
                  s.joules_per_token ? FormatNumber(*s.joules_per_token * 1e6, 3).c_str() : "-",
                  s.requests, s.errors, s.errors ? ": " : "", s.error_text.c_str());
      if (flags.concurrency > 1) {
        std::printf("          %d clients: %d sent, %d answered, %.1f requests/s over %.2f s\n",
                    flags.concurrency, load.sent, load.answered,
                    static_cast<double>(s.requests) / load.wall_seconds, load.wall_seconds);
      }
      std::fflush(stdout);
      by_backend[backend] = s;
    }
    auto find = [&](v1::Backend b) -> const Summary* {
      auto it = by_backend.find(b);
      return it == by_backend.end() ? nullptr : &it->second;
    };
    rows.push_back(CsvRow(flags, shape, find(v1::BACKEND_BASELINE), find(v1::BACKEND_AN1)));
    results.emplace_back(seq, std::move(by_backend));
  }
  if (!flags.csv.empty()) {
    if (!AppendCsv(flags.csv, rows)) return kExitError;
    std::printf("appended %zu row(s) to %s\n", rows.size(), flags.csv.c_str());
  }
  if (!flags.plot.empty() && !Plot(flags.plot, flags, results)) return kExitError;
  return failures ? kExitError : 0;
}

}  // namespace an1::cli
