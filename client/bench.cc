#include "client/bench.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace an1::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t batch, heads, kv_heads, seq_len, head_dim;
};

// Query-key pairs the mask lets through (bottom-right causal), for causal-aware FLOPs.
double VisiblePairs(int64_t q_len, int64_t kv_len, bool causal) {
  if (!causal) return static_cast<double>(q_len) * static_cast<double>(kv_len);
  double pairs = 0;
  for (int64_t i = 0; i < q_len; ++i) {
    pairs += static_cast<double>(std::clamp<int64_t>(i + kv_len - q_len + 1, 0, kv_len));
  }
  return pairs;
}

// One measured call.
struct Sample {
  double compute_ms = 0, server_ms = 0, round_trip_ms = 0;
  std::optional<double> energy_joules;
  uint64_t tokens = 0;
  std::string device;  // "cuda:N" that ran it
};

// What a load run did: every call sent is answered (OK or an error status, counted by name).
struct LoadResult {
  std::vector<Sample> samples;  // OK calls of the measured phase
  std::map<std::string, int> errors;
  int sent = 0, answered = 0;
  double wall_seconds = 0;  // the measured phase, all clients together
  bool setup_failed = false;
  std::string setup_error;  // the server's answer when a warm-up call failed
};

// `concurrency` clients, each with its own random inputs and its own region (for shm and
// cuda-ipc), warm up, wait for each other, then send --iters calls each (or for --duration).
// `at_start` runs once, when the measured phase starts (after every client's setup and warm-up).
LoadResult RunLoad(Client& client, const BenchFlags& flags, const Shape& shape, v1::Backend backend,
                   const std::function<void()>& at_start = {}) {
  LoadResult result;
  std::mutex mutex;
  std::latch ready(flags.concurrency);  // every client set up and warmed up
  std::latch go(1);                     // client 0 ran at_start: the measured phase begins
  std::atomic<bool> setup_failed{false};
  Clock::time_point measured_start, last_answer;
  std::vector<std::thread> clients;
  for (int c = 0; c < flags.concurrency; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(flags.seed + 7919 * c);
      an1::client::AttentionArgs args;
      Placement placement;
      try {
        args.q = RandomTensor({shape.batch, shape.heads, shape.seq_len, shape.head_dim},
                              flags.dtype, rng);
        args.k = RandomTensor({shape.batch, shape.kv_heads, shape.seq_len, shape.head_dim},
                              flags.dtype, rng);
        args.v = RandomTensor({shape.batch, shape.kv_heads, shape.seq_len, shape.head_dim},
                              flags.dtype, rng);
      } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        setup_failed = true;
      }
      args.backend = backend;
      args.causal = flags.causal;
      if (!setup_failed &&
          !placement.Place(client, flags.transport, flags.device, {&args.q, &args.k, &args.v},
                           args.q.bytes.size(), &args.output_region)) {
        setup_failed = true;
      }
      CallResult call;
      // At least one call before the measured phase, so that a backend the server cannot run
      // is found out here; a warm-up failure means there is nothing to measure.
      for (int i = 0; i < std::max(flags.warmup, 1) && !setup_failed; ++i) {
        if (grpc::Status status = client.Attention(args, &call); !status.ok()) {
          std::lock_guard lock(mutex);
          result.setup_error =
              std::string(StatusCodeName(status.error_code())) + ": " + status.error_message();
          setup_failed = true;
        }
      }
      ready.arrive_and_wait();
      if (c == 0) {
        if (!setup_failed && at_start) at_start();
        {
          std::lock_guard lock(mutex);
          measured_start = last_answer = Clock::now();
        }
        go.count_down();
      } else {
        go.wait();
      }
      if (setup_failed) return;
      const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(flags.duration_seconds));
      for (int i = 0; flags.duration_seconds > 0 ? Clock::now() < until : i < flags.iters; ++i) {
        {
          std::lock_guard lock(mutex);
          ++result.sent;
        }
        const grpc::Status status = client.Attention(args, &call);
        std::lock_guard lock(mutex);
        ++result.answered;
        last_answer = std::max(last_answer, Clock::now());
        if (!status.ok()) {
          ++result.errors[StatusCodeName(status.error_code())];
          continue;
        }
        Sample s;
        s.compute_ms = call.info.compute_seconds() * 1e3;
        s.server_ms = call.info.server_seconds() * 1e3;
        s.round_trip_ms = call.round_trip_seconds * 1e3;
        if (call.info.energy_measured()) s.energy_joules = call.info.energy_joules();
        s.tokens = call.info.tokens();
        s.device = call.info.device();
        result.samples.push_back(s);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  result.setup_failed = setup_failed;
  // Up to the last answer: the clients' teardown (freeing regions) is not load.
  result.wall_seconds = std::chrono::duration<double>(last_answer - measured_start).count();
  return result;
}

// The figures of one (shape, backend) run.
struct Summary {
  double latency_ms = 0, p99_ms = 0, server_ms = 0, e2e_ms = 0, e2e_p99_ms = 0;
  double tflops = 0, tflops_dense = 0, tokens_per_s = 0;
  std::optional<double> joules_per_token;
  int requests = 0, errors = 0;
  std::string error_text;  // "RESOURCE_EXHAUSTED x3; ..."
};

Summary Summarize(const LoadResult& load, const BenchFlags& flags, const Shape& shape) {
  Summary s;
  std::vector<double> compute, server, rtt;
  double joules = 0, tokens = 0;
  bool all_energy = !load.samples.empty();
  for (const Sample& x : load.samples) {
    compute.push_back(x.compute_ms);
    server.push_back(x.server_ms);
    rtt.push_back(x.round_trip_ms);
    tokens += static_cast<double>(x.tokens);
    if (x.energy_joules) {
      joules += *x.energy_joules;
    } else {
      all_energy = false;
    }
  }
  s.latency_ms = Median(compute);
  s.p99_ms = Quantile(compute, 0.99);
  s.server_ms = Median(server);
  s.e2e_ms = Median(rtt);
  s.e2e_p99_ms = Quantile(rtt, 0.99);
  const double flops_per_pair =
      4.0 * static_cast<double>(shape.batch * shape.heads * shape.head_dim);
  if (s.latency_ms > 0) {
    s.tflops = flops_per_pair * VisiblePairs(shape.seq_len, shape.seq_len, flags.causal) /
               (s.latency_ms * 1e9);
    s.tflops_dense =
        flops_per_pair * VisiblePairs(shape.seq_len, shape.seq_len, false) / (s.latency_ms * 1e9);
  }
  // One client: tokens per second of compute; several: tokens answered per second of wall time.
  if (flags.concurrency > 1 && load.wall_seconds > 0) {
    s.tokens_per_s = tokens / load.wall_seconds;
  } else if (s.latency_ms > 0) {
    s.tokens_per_s = static_cast<double>(shape.batch * shape.seq_len) / (s.latency_ms * 1e-3);
  }
  if (all_energy && tokens > 0) s.joules_per_token = joules / tokens;
  s.requests = static_cast<int>(load.samples.size());
  for (const auto& [name, count] : load.errors) {
    s.errors += count;
    s.error_text += (s.error_text.empty() ? "" : "; ") + name + " x" + std::to_string(count);
  }
  return s;
}

std::vector<v1::Backend> Backends(const BenchFlags& flags) {
  std::vector<v1::Backend> backends;
  if (flags.baseline || !flags.an1) backends.push_back(v1::BACKEND_BASELINE);
  if (flags.an1 || !flags.baseline) backends.push_back(v1::BACKEND_AN1);
  return backends;
}

std::string Number(double value, int decimals = 4) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

// The old llm_bench columns first (same names, same order), then ours.
const char* const kCsvHeader =
    "baseline_latency_ms,baseline_tflops,an1_latency_ms,an1_tflops,speedup,batch_size,seq_len,"
    "n_heads,head_dim,dtype,n_kv_heads,causal,transport,concurrency,baseline_tflops_dense,"
    "an1_tflops_dense,baseline_p99_ms,an1_p99_ms,baseline_server_ms,an1_server_ms,"
    "baseline_e2e_ms,an1_e2e_ms,baseline_e2e_p99_ms,an1_e2e_p99_ms,baseline_tokens_per_s,"
    "an1_tokens_per_s,baseline_j_per_token,an1_j_per_token,baseline_requests,an1_requests,"
    "baseline_errors,an1_errors";

std::string CsvRow(const BenchFlags& flags, const Shape& shape, const Summary* baseline,
                   const Summary* an1) {
  auto field = [](const Summary* s, auto get) { return s ? get(*s) : std::string(); };
  auto latency = [](const Summary& s) { return Number(s.latency_ms); };
  auto tflops = [](const Summary& s) { return Number(s.tflops, 3); };
  std::string speedup;
  if (baseline && an1 && an1->latency_ms > 0)
    speedup = Number(baseline->latency_ms / an1->latency_ms, 3);
  std::string row = field(baseline, latency) + "," + field(baseline, tflops) + "," +
                    field(an1, latency) + "," + field(an1, tflops) + "," + speedup + "," +
                    std::to_string(shape.batch) + "," + std::to_string(shape.seq_len) + "," +
                    std::to_string(shape.heads) + "," + std::to_string(shape.head_dim) + "," +
                    DTypeName(flags.dtype) + "," + std::to_string(shape.kv_heads) + "," +
                    (flags.causal ? "1" : "0") + "," + flags.transport + "," +
                    std::to_string(flags.concurrency);
  const std::vector<std::function<std::string(const Summary&)>> pairs = {
      [](const Summary& s) { return Number(s.tflops_dense, 3); },
      [](const Summary& s) { return Number(s.p99_ms); },
      [](const Summary& s) { return Number(s.server_ms); },
      [](const Summary& s) { return Number(s.e2e_ms); },
      [](const Summary& s) { return Number(s.e2e_p99_ms); },
      [](const Summary& s) { return Number(s.tokens_per_s, 1); },
      [](const Summary& s) {
        if (!s.joules_per_token) return std::string();
        char text[32];
        std::snprintf(text, sizeof(text), "%.6g", *s.joules_per_token);
        return std::string(text);
      },
      [](const Summary& s) { return std::to_string(s.requests); },
      [](const Summary& s) { return std::to_string(s.errors); }};
  for (const auto& get : pairs) row += "," + field(baseline, get) + "," + field(an1, get);
  return row;
}

bool AppendCsv(const std::string& path, const std::vector<std::string>& rows) {
  const std::filesystem::path file(path);
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  const bool fresh =
      !std::filesystem::exists(file, ec) || std::filesystem::file_size(file, ec) == 0;
  if (!fresh) {  // append only to a CSV with our columns (an old llm_bench file has fewer)
    std::ifstream in(path);
    std::string header;
    std::getline(in, header);
    if (header != kCsvHeader) {
      std::cerr << "error: " << path << " has other columns than an1 bench writes; give another "
                << "--csv path\n";
      return false;
    }
  }
  std::ofstream out(path, std::ios::app);
  if (fresh) out << kCsvHeader << "\n";
  for (const std::string& row : rows) out << row << "\n";
  out.close();
  if (!out) {
    std::cerr << "error: cannot write " << path << "\n";
    return false;
  }
  return true;
}

// Latency and TFLOP/s per backend against the sequence length, with gnuplot. The data and the
// script are kept beside the PNG (PNG.dat, PNG.gp) so that a host without gnuplot can hand them
// to one that has it.
bool Plot(const std::string& png, const BenchFlags& flags,
          const std::vector<std::pair<int64_t, std::map<v1::Backend, Summary>>>& results) {
  {
    std::ofstream dat(png + ".dat");
    dat << "# seq_len baseline_ms an1_ms baseline_tflops an1_tflops\n";
    for (const auto& [seq, by_backend] : results) {
      auto get = [&](v1::Backend b, bool tflops) {
        auto it = by_backend.find(b);
        if (it == by_backend.end() || it->second.requests == 0) return std::string("NaN");
        return Number(tflops ? it->second.tflops : it->second.latency_ms);
      };
      dat << seq << " " << get(v1::BACKEND_BASELINE, false) << " " << get(v1::BACKEND_AN1, false)
          << " " << get(v1::BACKEND_BASELINE, true) << " " << get(v1::BACKEND_AN1, true) << "\n";
    }
  }
  const std::string title = std::string("attention B=") + std::to_string(flags.batch) +
                            " H=" + std::to_string(flags.heads) +
                            " D=" + std::to_string(flags.head_dim) + " " + DTypeName(flags.dtype) +
                            (flags.causal ? " causal" : " dense");
  {
    std::ofstream gp(png + ".gp");
    const std::string dat = std::filesystem::path(png + ".dat").filename().string();
    gp << "set terminal pngcairo size 1400,560 font ',11'\n"
       << "set output '" << std::filesystem::path(png).filename().string() << "'\n"
       << "set datafile missing 'NaN'\nset logscale x 2\nset grid\nset key top left\n"
       << "set xlabel 'sequence length'\nset multiplot layout 1,2 title '" << title << "'\n"
       << "set ylabel 'latency (ms, median)'\nset logscale y\n"
       << "plot '" << dat << "' using 1:2 with linespoints title 'baseline', '' using 1:3 "
       << "with linespoints title 'an1'\n"
       << "unset logscale y\nset ylabel 'TFLOP/s (causal-aware)'\n"
       << "plot '" << dat << "' using 1:4 with linespoints title 'baseline', '' using 1:5 "
       << "with linespoints title 'an1'\nunset multiplot\n";
  }
  const std::string dir = std::filesystem::path(png).has_parent_path()
                              ? std::filesystem::path(png).parent_path().string()
                              : std::string(".");
  const std::string command = "cd '" + dir + "' && gnuplot '" +
                              std::filesystem::path(png + ".gp").filename().string() + "'";
  if (std::system(command.c_str()) != 0) {
    std::cerr << "error: gnuplot failed or is not installed; the plot's data and script are in "
              << png << ".dat and " << png << ".gp (run gnuplot there)\n";
    return false;
  }
  std::printf("wrote %s\n", png.c_str());
  return true;
}

Shape ShapeFor(const BenchFlags& flags, int64_t seq_len) {
  return {flags.batch, flags.heads, flags.kv_heads ? flags.kv_heads : flags.heads, seq_len,
          flags.head_dim};
}

void AddShapeAndLoadFlags(CLI::App* cmd, BenchFlags* f) {
  cmd->add_option("--batch-size", f->batch, "B")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--n-heads", f->heads, "H")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--n-kv-heads", f->kv_heads, "Hkv (default: H)")->check(CLI::PositiveNumber);
  cmd->add_option("--head-dim", f->head_dim, "D")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "fp16|bf16|fp32")
      ->transform(CLI::CheckedTransformer(kDTypes, CLI::ignore_case))
      ->default_str("fp16");
  cmd->add_flag("--causal,!--no-causal", f->causal, "Causal mask (default)");
  cmd->add_option("--warmup", f->warmup, "Warm-up calls per client")
      ->check(CLI::NonNegativeNumber)
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
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--iters", f->iters, "Timed calls per client")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--duration", f->duration_seconds,
                  "Seconds each client sends for (instead of --iters)")
      ->check(CLI::NonNegativeNumber);
  f->csv = "bench_logs/llm_bench_results.csv";
  cmd->add_option("--csv", f->csv, "CSV the rows are appended to")->capture_default_str();
  cmd->add_option("--plot", f->plot, "Write a PNG of latency and TFLOP/s per backend (gnuplot)");
  cmd->add_option("--energy-seconds", f->energy_seconds,
                  "Seconds of sustained calls per case for the energy per token (0: skip)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return cmd;
}

CLI::App* AddPowerCommand(CLI::App& app, BenchFlags* f) {
  CLI::App* cmd = app.add_subcommand(
      "power", "GPU energy per backend over a sustained run (the server's NVML energy counter)");
  AddShapeAndLoadFlags(cmd, f);
  cmd->add_option("--seq-len", f->seq_lens, "S")->delimiter(',')->check(CLI::PositiveNumber);
  f->duration_seconds = 10;
  cmd->add_option("--duration", f->duration_seconds, "Seconds of sustained load per backend")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return cmd;
}

int RunBench(Client& client, const BenchFlags& flags) {
  // The plot's path goes into a shell command and a gnuplot script, both quoted with '.
  if (flags.plot.find_first_of("'\\\n") != std::string::npos) {
    return UsageError("--plot: a path without quotes, backslashes or newlines, please");
  }
  std::printf("%-9s %7s %10s %9s %9s %9s %9s %10s %12s %12s %s\n", "backend", "seq_len",
              "latency_ms", "p99_ms", "TFLOP/s", "dense", "e2e_ms", "server_ms", "tokens/s",
              "uJ/token", "requests (errors)");
  std::vector<std::string> rows;
  std::vector<std::pair<int64_t, std::map<v1::Backend, Summary>>> results;
  int failures = 0;
  for (int64_t seq : flags.seq_lens) {
    const Shape shape = ShapeFor(flags, seq);
    std::map<v1::Backend, Summary> by_backend;
    for (v1::Backend backend : Backends(flags)) {
      const LoadResult load = RunLoad(client, flags, shape, backend);
      if (load.setup_failed) {
        // Asked for by name: an error. Run by default (both backends): said, and skipped.
        const bool asked = backend == v1::BACKEND_AN1 ? flags.an1 : flags.baseline;
        if (asked || load.setup_error.empty()) {
          if (!load.setup_error.empty()) std::cerr << "error: " << load.setup_error << "\n";
          return 1;
        }
        std::printf("%-9s %7lld skipped: %s\n", BackendName(backend), static_cast<long long>(seq),
                    load.setup_error.c_str());
        continue;
      }
      if (load.sent != load.answered) {  // cannot happen with blocking calls; checked anyway
        std::cerr << "error: " << load.sent << " requests sent, " << load.answered << " answered\n";
        return 1;
      }
      Summary s = Summarize(load, flags, shape);
      if (flags.energy_seconds > 0) {
        // The energy counter moves in steps of tens of milliseconds and is sampled by the
        // server every few tens: a few short calls cannot be told apart, so energy per token
        // comes from a sustained run of its own (the per-request energy the server returns).
        BenchFlags sustained = flags;
        sustained.warmup = 1;
        sustained.duration_seconds = flags.energy_seconds;
        s.joules_per_token =
            Summarize(RunLoad(client, sustained, shape, backend), flags, shape).joules_per_token;
      }
      failures += s.errors;
      std::printf("%-9s %7lld %10.3f %9.3f %9.1f %9.1f %9.3f %10.3f %12.0f %12s %d (%d%s%s)\n",
                  BackendName(backend), static_cast<long long>(seq), s.latency_ms, s.p99_ms,
                  s.tflops, s.tflops_dense, s.e2e_ms, s.server_ms, s.tokens_per_s,
                  s.joules_per_token ? Number(*s.joules_per_token * 1e6, 3).c_str() : "-",
                  s.requests, s.errors, s.errors ? ": " : "", s.error_text.c_str());
      if (flags.concurrency > 1) {
        std::printf("          %d clients: %d sent, %d answered, %.1f requests/s over %.2f s\n",
                    flags.concurrency, load.sent, load.answered,
                    static_cast<double>(s.requests) / load.wall_seconds, load.wall_seconds);
      }
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
    if (!AppendCsv(flags.csv, rows)) return 1;
    std::printf("appended %zu row(s) to %s\n", rows.size(), flags.csv.c_str());
  }
  if (!flags.plot.empty() && !Plot(flags.plot, flags, results)) return 1;
  return failures ? 1 : 0;
}

int RunPower(Client& client, const BenchFlags& flags) {
  // Each GPU's energy counter ("cuda:N" -> J); false with the reason when none can be read.
  using Counters = std::map<std::string, double>;
  auto read_counters = [&](Counters* counters, std::string* why) {
    v1::GetServerInfoResponse info;
    if (grpc::Status status = client.Info(&info); !status.ok()) {
      *why = std::string(StatusCodeName(status.error_code())) + ": " + status.error_message();
      return false;
    }
    counters->clear();
    for (const v1::DeviceInfo& d : info.devices()) {
      if (d.energy_available()) {
        (*counters)["cuda:" + std::to_string(d.index())] = d.energy_joules();
      } else {
        *why += "device " + std::to_string(d.index()) + ": " + d.energy_unavailable_reason() + "; ";
      }
    }
    if (counters->empty() && why->empty()) *why = "the server has no GPU";
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
    Counters before, after;
    std::string why;
    if (!read_counters(&before, &why)) {
      std::cerr << "error: no GPU energy counter on the server: " << why << "\n";
      return 1;
    }
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
