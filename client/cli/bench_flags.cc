// The command-line flags of `an1 bench` and `an1 power`.
#include "client/cli/bench.h"

namespace an1::cli {
namespace {

// The shape, the backends and the load, common to both subcommands.
void AddShapeAndLoadFlags(CLI::App* cmd, BenchFlags* f) {
  cmd->add_option("--batch-size", f->batch, "B")->check(PositiveNumber())->capture_default_str();
  cmd->add_option("--n-heads", f->heads, "H")->check(PositiveNumber())->capture_default_str();
  cmd->add_option("--n-kv-heads", f->kv_heads, "Hkv (default: H)")->check(PositiveNumber());
  cmd->add_option("--head-dim", f->head_dim, "D")->check(PositiveNumber())->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "fp16|bf16|fp32")
      ->transform(CLI::CheckedTransformer(kDTypes, CLI::ignore_case))
      ->default_str("fp16");
  cmd->add_flag("--causal,!--no-causal", f->causal, "Causal mask (default)");
  cmd->add_option("--warmup", f->warmup, "Warm-up calls per client")
      ->check(NonNegativeNumber())
      ->capture_default_str();
  cmd->add_flag("--backend-baseline", f->baseline, "Run the baseline backend");
  cmd->add_flag("--backend-an1", f->an1, "Run the an1 backend (neither flag: both)");
  cmd->add_option("--transport", f->transport, "inline|shm|cuda-ipc")
      ->check(CLI::IsMember({"inline", "shm", "cuda-ipc"}))
      ->capture_default_str();
  cmd->add_option("--device", f->device, "GPU for --transport cuda-ipc")->capture_default_str();
  cmd->add_option("--concurrency", f->concurrency, "Clients sending at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--seed", f->seed, "Seed of the random inputs")->capture_default_str();
}

}  // namespace

CLI::App* AddBenchCommand(CLI::App& app, BenchFlags* f) {
  CLI::App* cmd =
      app.add_subcommand("bench", "Attention benchmark of baseline and an1 (llm_bench)");
  AddShapeAndLoadFlags(cmd, f);
  cmd->add_option("--seq-len", f->seq_lens, "S, or a sweep: 512,1024,2048")
      ->delimiter(',')
      ->check(PositiveNumber())
      ->capture_default_str();
  cmd->add_option("--iters", f->iters, "Timed calls per client")
      ->check(PositiveNumber())
      ->capture_default_str();
  cmd->add_option("--duration", f->duration_seconds,
                  "Seconds each client sends for (instead of --iters)")
      ->check(NonNegativeNumber());
  f->csv = "bench_logs/llm_bench_results.csv";
  cmd->add_option("--csv", f->csv, "CSV the rows are appended to")->capture_default_str();
  cmd->add_option("--plot", f->plot, "Write a PNG of latency and TFLOP/s per backend (gnuplot)");
  cmd->add_option("--energy-seconds", f->energy_seconds,
                  "Seconds of sustained calls per case for the energy per token (0: skip; "
                  "skipped anyway when the server has no GPU energy counter)")
      ->check(NonNegativeNumber())
      ->capture_default_str();
  return cmd;
}

CLI::App* AddPowerCommand(CLI::App& app, BenchFlags* f) {
  CLI::App* cmd = app.add_subcommand(
      "power", "GPU energy per backend over a sustained run (the server's NVML energy counter)");
  AddShapeAndLoadFlags(cmd, f);
  cmd->add_option("--seq-len", f->seq_lens, "S")->delimiter(',')->check(PositiveNumber());
  f->duration_seconds = 10;
  cmd->add_option("--duration", f->duration_seconds, "Seconds of sustained load per backend")
      ->check(PositiveNumber())
      ->capture_default_str();
  return cmd;
}

std::vector<v1::Backend> Backends(const BenchFlags& flags) {
  std::vector<v1::Backend> backends;
  if (flags.baseline || !flags.an1) backends.push_back(v1::BACKEND_BASELINE);
  if (flags.an1 || !flags.baseline) backends.push_back(v1::BACKEND_AN1);
  return backends;
}

}  // namespace an1::cli
