// `an1 bench` and `an1 power`: attention benchmarks run against a server.
//
// bench: the old llm_bench flags and CSV (bench_logs/llm_bench_results.csv, its columns first),
// plus causal-aware and dense TFLOP/s, p99, server and end-to-end time, tokens/s, energy per
// token (the energy the server attributes to each request, over --energy-seconds of sustained
// calls after the timed ones; skipped when the server has no GPU energy counter), transport,
// sweeps over --seq-len, a gnuplot PNG, --concurrency N load mode, and one progress line per case
// on stderr.
// power: the GPU energy counter (read through GetServerInfo) before and after a sustained run
// per backend: average W, J per call, J per token, and the reduction of an1 against baseline.
//
// The pieces, one job to a file: bench_flags.cc (flags), bench.cc (the sweep), load.h (the
// concurrent load run), summary.h (its figures), energy.h (energy counters and the energy
// phase), power.cc, csv.h, plot.h.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "client/cli/cli_common.h"

namespace an1::cli {

struct BenchFlags {
  int64_t batch = 8, heads = 32, kv_heads = 0, head_dim = 128;
  std::vector<int64_t> seq_lens = {2048};
  v1::DType dtype = v1::DTYPE_FP16;
  bool causal = true;
  int warmup = 10, iters = 100;
  bool baseline = false, an1 = false;  // neither: both
  std::string transport = "inline";
  int device = 0;
  int concurrency = 1;
  double duration_seconds = 0;  // > 0: each client sends for this long instead of --iters
  double energy_seconds = 2;    // bench: sustained calls for the energy per token (0: none)
  std::string csv;              // bench: default bench_logs/llm_bench_results.csv
  std::string plot;             // bench: PNG path (gnuplot)
  uint64_t seed = 0;
};

// Adds the subcommands and their flags (shared: the shape, the backends, the load).
CLI::App* AddBenchCommand(CLI::App& app, BenchFlags* flags);
CLI::App* AddPowerCommand(CLI::App& app, BenchFlags* flags);

// The backends to run, baseline first: those asked for by --backend-baseline / --backend-an1,
// both when neither is given.
std::vector<v1::Backend> Backends(const BenchFlags& flags);

int RunBench(Client& client, const BenchFlags& flags);
int RunPower(Client& client, const BenchFlags& flags);

}  // namespace an1::cli
