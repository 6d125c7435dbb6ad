// an1: the command-line client of AN1 Engine (README.md: Quick start, and the `an1` client under
// Configuration). Exit status 0 on success; on error the server's status code and message go to
// stderr and the exit status is 1; bad usage (an unknown option or subcommand, a value that does
// not parse or is out of range) exits 2 with CLI11's message; --help prints help and exits 0.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "client/cli/bench.h"
#include "client/cli/cli_common.h"
#include "client/cli/info.h"
#include "client/cli/lse.h"
#include "client/cli/paged.h"
#include "client/client.h"
#include "client/cuda_region.h"
#include "client/elements.h"
#include "client/npy.h"
#include "client/shared_memory.h"

namespace {

using namespace an1::cli;  // NOLINT(build/namespaces): the CLI's own helpers

bool LoadNpy(const std::string& path, v1::DType dtype, HostTensor* tensor) {
  an1::client::NpyArray array;
  std::string error;
  if (!an1::client::ReadNpy(path, &array, &error) ||
      !an1::client::NpyToTensor(array, dtype, tensor, &error)) {
    std::cerr << "error: " << error << "\n";
    return false;
  }
  return true;
}

// Prints the result; writes the output to `out_path` and, for attention with --return-lse, the
// LSE to `lse_path` (each when not empty).
int PrintResult(const CallResult& result, const std::string& out_path, bool lse,
                const std::string& lse_path) {
  const v1::ExecutionInfo& info = result.info;
  std::printf("backend: %s (requested %s)%s%s\n", BackendName(info.backend()),
              BackendName(info.requested()), info.backend_reason().empty() ? "" : ": ",
              info.backend_reason().c_str());
  if (!info.kernel().empty()) std::printf("kernel: %s\n", info.kernel().c_str());
  std::printf("device: %s\n", info.device().c_str());
  std::printf("output: %s %s\n", DTypeName(result.output.dtype),
              ShapeString(result.output.shape).c_str());
  std::printf(
      "server queue: %.3f ms, compute: %.3f ms, copies: %.3f ms (%llu bytes), "
      "round trip: %.3f ms\n",
      info.queue_seconds() * 1e3, info.compute_seconds() * 1e3, info.copy_seconds() * 1e3,
      static_cast<unsigned long long>(info.copied_bytes()), result.round_trip_seconds * 1e3);
  if (info.energy_measured()) {
    // The server shares its GPU's energy counter among requests at each read of it (every
    // --energy-sample-ms); a lone short call gets an estimate, 0 before the GPU was seen busy.
    std::printf(
        "tokens: %llu, GPU energy share: %.4f J (%.3f uJ/token%s)\n",
        static_cast<unsigned long long>(info.tokens()), info.energy_joules(),
        info.tokens() ? info.energy_joules() / static_cast<double>(info.tokens()) * 1e6 : 0.0,
        info.energy_joules() > 0 ? "" : "; too short to measure alone: use an1 power");
  } else {
    std::printf("tokens: %llu, GPU energy: not measured\n",
                static_cast<unsigned long long>(info.tokens()));
  }
  const std::vector<float> values =
      an1::client::DecodeElements(result.output.bytes, result.output.dtype);
  double sum = 0, sum_abs = 0;
  for (float x : values) {
    sum += x;
    sum_abs += std::fabs(x);
  }
  std::printf("checksum: sum=%.6g sum_abs=%.6g elements=%zu\n", sum, sum_abs, values.size());
  if (!out_path.empty()) {
    std::string error;
    if (!an1::client::WriteNpy(out_path, an1::client::TensorToNpy(result.output), &error)) {
      std::cerr << "error: " << error << "\n";
      return 1;
    }
    std::printf("wrote %s\n", out_path.c_str());
  }
  return lse ? ReportLse(result.lse, lse_path) : 0;
}

// Sends the request `repeat` times (a copy of `args` each time) and prints the last result, and
// with repeats the medians of the timings.
template <typename Args, typename Call>
int Execute(const Args& args, int repeat, double start_at, Placement& placement,
            const std::string& out_path, Call call, bool lse = false,
            const std::string& lse_path = "") {
  // --start-at: several clients set up first, then start their calls together.
  const auto start = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(start_at)));
  if (start_at > 0) std::this_thread::sleep_until(start);
  std::vector<double> round_trip, compute, queue, copies, overhead, beyond, outside;
  CallResult result;
  const auto loop_start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeat; ++i) {
    grpc::Status status = call(Args(args), &result);
    if (!status.ok()) return ReportRpcError(status);
    round_trip.push_back(result.round_trip_seconds * 1e3);
    compute.push_back(result.info.compute_seconds() * 1e3);
    queue.push_back(result.info.queue_seconds() * 1e3);
    copies.push_back(result.info.copy_seconds() * 1e3);
    overhead.push_back((result.info.server_seconds() - result.info.compute_seconds()) * 1e6);
    beyond.push_back((result.round_trip_seconds - result.info.compute_seconds()) * 1e6);
    outside.push_back((result.round_trip_seconds - result.info.server_seconds()) * 1e6);
  }
  const double loop_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - loop_start)
          .count();
  const double loop_end_unix =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!placement.FetchOutput(&result)) return 1;
  if (repeat > 1) {
    std::printf(
        "medians of %d calls: round trip %.3f ms, server compute %.3f ms, queue %.3f ms, "
        "copies %.3f ms, server time beyond compute %.1f us, copied %llu bytes per call; "
        "all %d calls took %.1f ms, ending at unix time %.6f\n",
        repeat, Median(round_trip), Median(compute), Median(queue), Median(copies),
        Median(overhead), static_cast<unsigned long long>(result.info.copied_bytes()), repeat,
        loop_ms, loop_end_unix);
    // The fixed cost of a call, each a median of its per-call values: the round trip beyond the
    // compute, the server's part of it and the client's and the transport's (request building,
    // gRPC both ways, response parsing).
    std::printf(
        "medians beyond compute: round trip %.1f us, server %.1f us, client and transport "
        "%.1f us\n",
        Median(beyond), Median(overhead), Median(outside));
  }
  return PrintResult(result, out_path, lse, lse_path);
}

// Bytes of a @ b for NumPy-broadcast batch dimensions (shapes are validated by the server).
std::size_t MatmulOutputBytes(const HostTensor& a, const HostTensor& b) {
  if (a.shape.size() < 2 || b.shape.size() < 2) return 0;
  std::size_t n =
      an1::client::WireDTypeSize(a.dtype) * a.shape[a.shape.size() - 2] * b.shape.back();
  const std::size_t rank = std::max(a.shape.size(), b.shape.size()) - 2;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::size_t ai =
        i + a.shape.size() - 2 >= rank ? i + a.shape.size() - 2 - rank : SIZE_MAX;
    const std::size_t bi =
        i + b.shape.size() - 2 >= rank ? i + b.shape.size() - 2 - rank : SIZE_MAX;
    const int64_t da = ai == SIZE_MAX ? 1 : a.shape[ai], db = bi == SIZE_MAX ? 1 : b.shape[bi];
    n *= static_cast<std::size_t>(std::max(da, db));
  }
  return n;
}

}  // namespace

int Run(int argc, char** argv) {
  an1::client::ClientOptions options;
  if (const char* env = std::getenv("AN1_SERVER"); env != nullptr && *env != '\0') {
    options.target = env;
  }
  double timeout_seconds = 0;

  CLI::App app{"an1: client of the AN1 Engine attention and matmul service"};
  app.require_subcommand(1);
  // "error: ..." as for every other error of the CLI (the subcommands' errors print through it).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "error: " + std::string(e.what()) + "\nRun with --help for more information.\n";
  });
  // The global options may come before or after the subcommand (`an1 health --server H:P`):
  // a subcommand hands the options it does not know to the app. Inherited by every subcommand
  // added below, so it must be set before them. Given more than once, before, after or both,
  // the last one wins.
  app.fallthrough();
  app.footer(
      "Global options --server, --timeout, --poll-us, --max-message-bytes and --tls-* go before "
      "or after the subcommand; given more than once, the last wins.");
  app.add_option(
         "--server", options.target,
         "an1d address host:port, or unix:PATH for its --listen-unix socket [env AN1_SERVER]")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->capture_default_str();
  app.add_option("--timeout", timeout_seconds, "Per-call deadline in seconds (0: none)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->check(NonNegativeNumber());
  app.add_option("--poll-us", options.poll_us,
                 "Microseconds a compute call polls for its response before sleeping (0: sleeps "
                 "at once); polling saves a thread wake-up per call and keeps a core busy")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  app.add_option("--max-message-bytes", options.max_message_bytes, "Largest message")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->check(CLI::Range(1024, 2147483647))
      ->capture_default_str();

  std::string tls_ca, tls_cert, tls_key, tls_server_name, token_file;
  for (auto [flag, into, help] :
       {std::tuple{"--tls-ca", &tls_ca, "PEM CA bundle: connect over TLS, trusting this CA"},
        {"--tls-cert", &tls_cert, "PEM client certificate, for a server requiring mutual TLS"},
        {"--tls-key", &tls_key, "PEM private key of --tls-cert"},
        {"--token-file", &token_file,
         "File holding a bearer token for a server with --auth-tokens [env AN1_TOKEN: the token]"},
        {"--tls-server-name", &tls_server_name,
         "Name the server's certificate must carry (default: the host of --server)"}}) {
    app.add_option(flag, *into, help)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }

  app.add_subcommand("health", "Check the server's health (exit 0 when SERVING)");
  app.add_subcommand("info", "Print the server's version, devices, backends, license, limits");

  // Shared by attention and matmul.
  v1::DType dtype = v1::DTYPE_FP16;
  v1::Backend backend = v1::BACKEND_AUTO;
  std::string out_path;
  uint64_t seed = 0;
  auto add_common = [&](CLI::App* cmd) {
    cmd->add_option("--dtype", dtype, "fp16|bf16|fp32 (inputs are converted to it)")
        ->transform(CLI::CheckedTransformer(kDTypes, CLI::ignore_case))
        ->default_str("fp16");
    cmd->add_option("--backend", backend, "auto|an1|baseline")
        ->transform(CLI::CheckedTransformer(kBackends, CLI::ignore_case))
        ->default_str("auto");
    cmd->add_option("--out", out_path, "Write the output to this .npy file");
    cmd->add_option("--seed", seed, "Seed of the random inputs")->capture_default_str();
  };

  CLI::App* attention = app.add_subcommand("attention", "Scaled dot-product attention");
  int64_t batch = 1, heads = 8, kv_heads = 0, seq_len = 128, kv_seq_len = 0, head_dim = 64;
  bool causal = true;
  std::optional<float> scale;
  std::string q_path, k_path, v_path, lse_path;
  bool return_lse = false;
  add_common(attention);
  attention->add_option("--batch-size", batch, "B")->check(PositiveNumber())->capture_default_str();
  attention->add_option("--n-heads", heads, "H (query heads)")
      ->check(PositiveNumber())
      ->capture_default_str();
  attention->add_option("--n-kv-heads", kv_heads, "Hkv (default: H)")->check(PositiveNumber());
  attention->add_option("--seq-len", seq_len, "Sq")->check(PositiveNumber())->capture_default_str();
  attention->add_option("--kv-seq-len", kv_seq_len, "Sk (default: Sq)")->check(PositiveNumber());
  attention->add_option("--head-dim", head_dim, "D")
      ->check(PositiveNumber())
      ->capture_default_str();
  attention->add_flag("--causal,!--no-causal", causal,
                      "Causal mask, bottom-right aligned (default)");
  attention->add_option("--scale", scale, "Softmax scale (default 1/sqrt(D))");
  attention->add_option("--q", q_path, "q from a .npy file (B, H, Sq, D)");
  attention->add_option("--k", k_path, "k from a .npy file (B, Hkv, Sk, D)");
  attention->add_option("--v", v_path, "v from a .npy file (B, Hkv, Sk, D)");
  attention->add_flag("--return-lse", return_lse,
                      "Also get each query row's log-sum-exp (B, H, Sq) and print a summary");
  attention->add_option("--lse-out", lse_path,
                        "Write the log-sum-exp to this float32 .npy file (implies --return-lse)");

  CLI::App* matmul = app.add_subcommand("matmul", "Batched matrix multiplication a @ b");
  std::vector<int64_t> a_shape = {512, 512}, b_shape = {512, 512};
  std::string a_path, b_path;
  add_common(matmul);
  matmul->add_option("--a-shape", a_shape, "Shape of a (..., m, k) for random input")
      ->delimiter(',')
      ->capture_default_str();
  matmul->add_option("--b-shape", b_shape, "Shape of b (..., k, n) for random input")
      ->delimiter(',')
      ->capture_default_str();
  bool allow_tf32 = false;
  matmul->add_flag("--allow-tf32", allow_tf32, "Let the GPU round fp32 operands to TF32");
  matmul->add_option("--a", a_path, "a from a .npy file");
  matmul->add_option("--b", b_path, "b from a .npy file");

  PagedFlags paged_flags;
  CLI::App* paged = AddPagedCommand(app, &paged_flags);
  add_common(paged);

  std::string transport = "inline";
  int device = 0, repeat = 1;
  double start_at = 0;
  for (CLI::App* cmd : {attention, matmul, paged}) {
    cmd->add_option("--transport", transport,
                    "inline (in the messages), shm (POSIX shared memory) or cuda-ipc (GPU memory "
                    "shared with the server; same host)")
        ->check(CLI::IsMember({"inline", "shm", "cuda-ipc"}))
        ->capture_default_str();
    cmd->add_option("--device", device, "GPU for --transport cuda-ipc")->capture_default_str();
    cmd->add_option("--repeat", repeat, "Send the request this many times; print median times")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    cmd->add_option("--start-at", start_at,
                    "Unix time at which to send the first call, after the inputs are placed "
                    "(lets several clients start together)");
  }

  BenchFlags bench_flags, power_flags;
  CLI::App* bench = AddBenchCommand(app, &bench_flags);
  CLI::App* power = AddPowerCommand(app, &power_flags);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help (exit code 0) is printed and exits 0; every usage error exits 2, not CLI11's own
    // codes (105 for a value that fails its check, 106 for a missing subcommand, ...).
    if (e.get_exit_code() != 0 && app.get_subcommands().empty() && !app.remaining().empty() &&
        app.remaining().front().rfind("-", 0) != 0) {
      // `an1 frobnicate`: CLI11 would only say that a subcommand is required.
      std::string names;
      for (const CLI::App* sub : app.get_subcommands({})) {
        names += (names.empty() ? "" : ", ") + sub->get_name();
      }
      return UsageError("unknown subcommand " + app.remaining().front() + " (one of " + names +
                        "; an1 --help)");
    }
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  options.client_id = "an1-cli-" + std::to_string(getpid());
  if (!tls_ca.empty() || !tls_cert.empty() || !tls_key.empty() || !tls_server_name.empty()) {
    if (tls_cert.empty() != tls_key.empty()) {
      return UsageError("--tls-cert and --tls-key go together");
    }
    an1::client::ClientTls& tls = options.tls.emplace();
    tls.server_name = tls_server_name;
    for (auto [path, into] :
         {std::pair{&tls_ca, &tls.root_certs}, std::pair{&tls_cert, &tls.cert_chain},
          std::pair{&tls_key, &tls.private_key}}) {
      if (path->empty()) continue;
      std::ifstream in(*path, std::ios::binary);
      std::ostringstream text;
      if (in) text << in.rdbuf();
      if (!in || text.str().empty()) {
        std::cerr << "error: cannot read " << *path << "\n";
        return kExitError;
      }
      *into = text.str();
    }
  }
  if (const char* token = std::getenv("AN1_TOKEN"); token != nullptr) options.bearer_token = token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!std::getline(in, options.bearer_token) || options.bearer_token.empty()) {
      std::cerr << "error: cannot read a token from " << token_file << "\n";
      return kExitError;
    }
  }
  Client client(options);

  if (app.got_subcommand("health")) {
    bool serving = false;
    grpc::Status status = client.Health(&serving);
    if (!status.ok()) return ReportRpcError(status);
    std::printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
    return serving ? 0 : 1;
  }

  if (app.got_subcommand("info")) return RunInfo(client);

  if (app.got_subcommand(bench)) return RunBench(client, bench_flags);
  if (app.got_subcommand(power)) return RunPower(client, power_flags);

  // The append writes into the caller's cache, which must be shared with the server.
  if (app.got_subcommand(paged) && paged_flags.append && transport == "inline") transport = "shm";
  // Before making any input: a transport this host cannot use is said in plain words.
  if ((app.got_subcommand(attention) || app.got_subcommand(matmul) || app.got_subcommand(paged)) &&
      !CheckTransport(transport, device)) {
    return kExitError;
  }
  std::mt19937_64 rng(seed);
  if (app.got_subcommand(attention)) {
    an1::client::AttentionArgs args;
    const int files = !q_path.empty() + !k_path.empty() + !v_path.empty();
    if (files == 3) {
      if (!LoadNpy(q_path, dtype, &args.q) || !LoadNpy(k_path, dtype, &args.k) ||
          !LoadNpy(v_path, dtype, &args.v)) {
        return 1;
      }
    } else if (files == 0) {
      const int64_t hkv = kv_heads ? kv_heads : heads, sk = kv_seq_len ? kv_seq_len : seq_len;
      args.q = RandomTensor({batch, heads, seq_len, head_dim}, dtype, rng);
      args.k = RandomTensor({batch, hkv, sk, head_dim}, dtype, rng);
      args.v = RandomTensor({batch, hkv, sk, head_dim}, dtype, rng);
    } else {
      return UsageError("give all of --q, --k and --v, or none for random inputs");
    }
    args.backend = backend;
    args.causal = causal;
    args.scale = scale;
    args.return_lse = return_lse || !lse_path.empty();
    Placement placement;
    if (!placement.Place(client, transport, device, {&args.q, &args.k, &args.v},
                         args.q.bytes.size(), &args.output_region)) {
      return kExitError;
    }
    return Execute(
        args, repeat, start_at, placement, out_path,
        [&](an1::client::AttentionArgs a, CallResult* r) {
          return client.Attention(std::move(a), r);
        },
        args.return_lse, lse_path);
  }

  if (app.got_subcommand(paged)) {
    an1::client::PagedAttentionArgs args;
    if (!MakePagedArgs(paged_flags, dtype, rng, &args)) return kExitError;
    args.backend = backend;
    // The server checks every index entry on the host before use, so it takes the index
    // tensors inline or in system shared memory only: with --transport cuda-ipc they go inline
    // unless --index-transport shm puts them in a region of their own.
    std::string index_transport = paged_flags.index_transport;
    if (index_transport.empty()) index_transport = transport == "cuda-ipc" ? "inline" : transport;
    std::vector<HostTensor*> inputs = {&args.q, &args.k_cache, &args.v_cache};
    const std::vector<HostTensor*> indices = {&args.cu_seqlens_q, &args.page_table, &args.kv_lens};
    if (index_transport == transport) inputs.insert(inputs.end(), indices.begin(), indices.end());
    if (args.k_new) inputs.insert(inputs.end(), {&*args.k_new, &*args.v_new});
    Placement placement, index_placement;
    if (!placement.Place(client, transport, device, inputs, args.q.bytes.size(),
                         &args.output_region) ||
        (index_transport != transport &&
         !index_placement.Place(client, index_transport, device, indices, 0, nullptr))) {
      return kExitError;
    }
    return Execute(
        args, repeat, start_at, placement, out_path,
        [&](an1::client::PagedAttentionArgs a, CallResult* r) {
          return client.PagedAttention(std::move(a), r);
        },
        args.return_lse, paged_flags.lse_path);
  }

  if (app.got_subcommand(matmul)) {
    an1::client::MatmulArgs args;
    if (!a_path.empty() && !b_path.empty()) {
      if (!LoadNpy(a_path, dtype, &args.a) || !LoadNpy(b_path, dtype, &args.b)) return 1;
    } else if (a_path.empty() && b_path.empty()) {
      args.a = RandomTensor(a_shape, dtype, rng);
      args.b = RandomTensor(b_shape, dtype, rng);
    } else {
      return UsageError("give both --a and --b, or neither for random inputs");
    }
    args.backend = backend;
    args.allow_tf32 = allow_tf32;
    Placement placement;
    if (!placement.Place(client, transport, device, {&args.a, &args.b},
                         MatmulOutputBytes(args.a, args.b), &args.output_region)) {
      return kExitError;
    }
    return Execute(
        args, repeat, start_at, placement, out_path,
        [&](an1::client::MatmulArgs a, CallResult* r) { return client.Matmul(std::move(a), r); });
  }
  return UsageError("unknown subcommand");
}

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {  // bad shapes, out of memory: a message, not an abort
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
