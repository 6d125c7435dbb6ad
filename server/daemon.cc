#include "server/daemon.h"

#include <pthread.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "server/auth.h"
#include "server/library_logs.h"
#include "server/server.h"
#include "server/version.h"

namespace an1::server {
namespace {

std::optional<std::string> Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// --license-file wins over AN1_LICENSE_KEY: an explicit flag overrides the environment.
LicenseOptions LoadLicense(const std::string& license_file) {
  LicenseOptions license;
  if (!license_file.empty()) {
    license.source = "--license-file " + license_file;
    std::ifstream in(license_file, std::ios::binary);
    std::ostringstream text;
    // Read at most one byte past the cap: a larger file is refused by the verifier anyway.
    std::string token(license::kMaxTokenBytes + 1, '\0');
    if (!in) {
      license.load_error =
          "cannot read the license file " + license_file + ": " + std::strerror(errno);
    } else {
      in.read(token.data(), static_cast<std::streamsize>(token.size()));
      token.resize(static_cast<std::size_t>(in.gcount()));
      license.token = std::move(token);
    }
  } else if (std::optional<std::string> token = Env("AN1_LICENSE_KEY")) {
    license.source = "AN1_LICENSE_KEY";
    license.token = std::move(*token);
  }
  return license;
}

std::string JoinFeatures(const std::vector<std::string>& features) {
  std::string out;
  for (const std::string& f : features) out += (out.empty() ? "" : ",") + f;
  return out;
}

// One line about the license: who, which, until when, what; never the token.
void LogLicense(const EngineInfo& info, const std::string& source) {
  const LicenseStatus& license = info.license;
  const std::string from = source.empty() ? "" : " (from " + source + ")";
  if (license.valid) {
    spdlog::info("license valid{}: licensee '{}', id {}, expires {}, features {}", from,
                 license.claims->licensee, license.claims->license_id,
                 license::FormatUnixTime(license.claims->expires_at),
                 JoinFeatures(license.claims->features));
  } else {
    spdlog::warn("license not valid{}: {}; the baseline serves", from, license.reason);
  }
}

}  // namespace

int RunDaemon(int argc, char** argv, const std::vector<license::PublicKey>& trusted_keys) {
  ServerOptions options;
  std::string backend = Env("AN1_BACKEND").value_or("auto");
  std::string log_level = "info";
  std::string ready_file;
  std::string license_file;
  double grace_seconds = 30;
  std::size_t max_tensor_bytes = options.engine.limits.max_tensor_bytes;

  CLI::App app{"an1d: GPU-resident attention and matmul over gRPC"};
  app.set_version_flag("--version", std::string(kVersion) + " (" + kBuildDescription + ")");
  app.add_option("--listen", options.listen, "gRPC address host:port (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--listen-unix", options.listen_unix,
                 "Also serve gRPC on this Unix socket path (mode 0666; clients on this host call "
                 "unix:PATH, skipping loopback TCP); empty: TCP only")
      ->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "Prometheus /metrics address host:port; empty disables")
      ->capture_default_str();
  app.add_option("--tls-cert", options.tls.cert_file,
                 "PEM certificate chain: serve gRPC over TLS (with --tls-key)");
  app.add_option("--tls-key", options.tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", options.tls.client_ca_file,
                 "PEM CA bundle: mutual TLS, every client must present a certificate it signed");
  app.add_option("--auth-tokens", options.auth_tokens_file,
                 "Bearer tokens: lines of 'SHA256HEX PRINCIPAL SCOPE[,SCOPE...]' (infer, shm, "
                 "admin); without it every caller may do everything");
  app.add_option("--auth-client-certs", options.auth_client_certs_file,
                 "mTLS client identities: lines of 'NAME PRINCIPAL SCOPE[,SCOPE...]', NAME a "
                 "subject alternative name or the subject CN of a client certificate (needs "
                 "--tls-client-ca)");
  bool hash_token = false;
  app.add_flag("--hash-token", hash_token,
               "Read a token on standard input, print the SHA-256 a token file holds for it, exit");
  app.add_option("--backend", backend,
                 "Policy for requests that ask for auto: auto|an1|baseline [env AN1_BACKEND]")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|critical|off")
      ->capture_default_str();
  app.add_option("--max-message-bytes", options.max_message_bytes,
                 "Largest gRPC request or response message")
      ->check(CLI::Range(1024, 2147483647))
      ->capture_default_str();
  app.add_option("--max-tensor-bytes", max_tensor_bytes, "Largest single tensor")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-queue-depth", options.engine.max_queue_depth,
                 "Requests waiting before new ones get RESOURCE_EXHAUSTED")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--executor-threads", options.engine.executor_threads,
                 "CPU mode: requests executed concurrently")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-inflight-bytes", options.engine.max_inflight_bytes,
                 "Tensor bytes of admitted, unfinished requests before RESOURCE_EXHAUSTED")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--executor-spin-us", options.engine.executor_spin_us,
                 "GPU mode: microseconds an idle executor polls for work before sleeping")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  std::string gpu_wait = "yield";
  app.add_option("--gpu-wait", gpu_wait,
                 "GPU mode: how an executor waits for its stream: yield (poll, yielding the core; "
                 "the lowest latency measured on an H200 host), spin (poll), block (sleep until "
                 "the GPU's interrupt)")
      ->check(CLI::IsMember({"spin", "yield", "block"}))
      ->capture_default_str();
  app.add_option("--energy-sample-ms", options.engine.energy_sample_ms,
                 "GPU mode: milliseconds between reads of each GPU's NVML energy counter (the "
                 "per-request energy and an1_gpu_energy_joules_total)")
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  app.add_option("--streams-per-gpu", options.engine.streams_per_gpu,
                 "CUDA streams (and executor threads) per GPU")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--cpu-threads", options.engine.cpu_threads,
                 "Threads of the CPU compute pool (0: one per core)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  app.add_flag("--no-gpu", options.engine.disable_gpu, "Serve on the CPU even if a GPU is present");
  bool no_shared_memory = false;
  app.add_flag("--no-shared-memory", no_shared_memory,
               "Refuse client shared memory regions (tensors must be inline)");
  app.add_option("--shm-socket", options.shared_memory.socket_path,
                 "Unix socket (mode 0666) on which clients pass their shared memory descriptors "
                 "(default: $XDG_RUNTIME_DIR or /tmp, /an1d-<pid>.sock)");
  app.add_flag("--allow-shm-open-by-name", options.shared_memory.allow_open_by_name,
               "Also let RegisterSystemSharedMemory open an object by key with the server's own "
               "rights (unsafe: any caller reaches any object this user can; off by default)");
  app.add_option("--max-regions-per-client", options.shared_memory.max_regions_per_client,
                 "Shared memory regions one client may register")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--max-regions", options.shared_memory.max_regions_total,
                 "Shared memory regions of all clients together (each holds a descriptor)")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--region-idle-seconds", options.shared_memory.idle_expiry_seconds,
                 "Release the regions of a client not seen for this long (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-region-bytes", options.shared_memory.max_total_bytes,
                 "Registered shared memory bytes, all clients together")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  ConnectionOptions& c = options.connections;
  const auto seconds = CLI::Range(0, 86400 * 24);  // in milliseconds, an int holds 24 days
  app.add_option("--max-connection-age-seconds", c.max_age_seconds,
                 "GOAWAY after this long, so clients re-resolve and spread (0: never)")
      ->check(seconds)
      ->capture_default_str();
  app.add_option("--max-connection-age-grace-seconds", c.max_age_grace_seconds,
                 "Calls in flight on a recycled connection get this long (0: unlimited)")
      ->check(seconds)
      ->capture_default_str();
  app.add_option("--max-connection-idle-seconds", c.max_idle_seconds,
                 "Close connections without calls for this long (0: never)")
      ->check(seconds)
      ->capture_default_str();
  app.add_option("--max-concurrent-streams", c.max_concurrent_streams,
                 "Calls at once on one connection (0: gRPC's default)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app.add_option("--max-metadata-bytes", c.max_metadata_bytes,
                 "Request metadata (headers) of one call (0: gRPC's default)")
      ->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  app.add_option("--keepalive-time-seconds", c.keepalive_time_seconds,
                 "Ping a quiet connection this often (0: never)")
      ->check(seconds)
      ->capture_default_str();
  app.add_option("--keepalive-timeout-seconds", c.keepalive_timeout_seconds,
                 "Close a connection whose ping is not answered within this")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--min-client-ping-interval-seconds", c.min_client_ping_interval_seconds,
                 "Client pings closer than this while calls are open are refused (GOAWAY); "
                 "with no call open gRPC allows one per 2 h")
      ->check(seconds)
      ->capture_default_str();
  app.add_option("--shutdown-grace-seconds", grace_seconds,
                 "On SIGTERM/SIGINT, how long calls in flight may take to finish")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--license-file", license_file,
                 "File holding the license token (wins over AN1_LICENSE_KEY)");
  std::string license_clock_state;
  app.add_option("--license-clock-state", license_clock_state,
                 "File keeping the latest time seen, so a clock set back cannot revive an "
                 "expired license across restarts (empty: this process only)");
  app.add_option("--ready-file", ready_file,
                 "Once serving, write 'grpc_port=N' and 'metrics_port=M' lines to this file");
  CLI11_PARSE(app, argc, argv);
  if (hash_token) {
    std::string token;
    std::getline(std::cin, token);
    if (token.empty()) {
      std::fprintf(stderr, "an1d: --hash-token reads a token on standard input\n");
      return 2;
    }
    std::printf("%s\n", TokenHash(token).c_str());
    return 0;
  }

  auto logger = spdlog::stderr_color_mt("an1d");
  spdlog::set_default_logger(logger);
  const spdlog::level::level_enum level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    std::fprintf(stderr, "an1d: unknown --log-level '%s'\n", log_level.c_str());
    return 2;
  }
  spdlog::set_level(level);
  RouteLibraryLogsToSpdlog();
  struct RestoreAtExit {  // declared before the server: runs after its shutdown has logged
    ~RestoreAtExit() { RestoreLibraryLogs(); }
  } restore_library_logs;

  const std::optional<BackendKind> policy = ParseBackendKind(backend);
  if (!policy) {
    spdlog::critical("unknown backend policy '{}': use auto, an1 or baseline", backend);
    return 2;
  }
  options.engine.default_policy = *policy;
  options.engine.gpu_wait = gpu_wait == "block"   ? EngineOptions::GpuWait::kBlock
                            : gpu_wait == "yield" ? EngineOptions::GpuWait::kYield
                                                  : EngineOptions::GpuWait::kSpin;
  options.engine.limits.max_tensor_bytes = max_tensor_bytes;
  options.shared_memory.enabled = !no_shared_memory;
  options.engine.license = LoadLicense(license_file);
  options.engine.license.trusted_keys = trusted_keys;
  options.engine.license.clock_state_path = license_clock_state;

  // Block the shutdown signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = An1Server::Start(options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().message());
    return 1;
  }
  const EngineInfo info = (*server)->engine().Info();
  spdlog::info("an1d {} ({})", kVersion, kBuildDescription);
  if (!info.gpu_mode) spdlog::warn("{}", info.mode_reason);
  LogLicense(info, options.engine.license.source);
  for (const auto& d : info.devices) {
    spdlog::info("found GPU {}: {} (sm_{}{}, {} MiB)", d.index, d.name, d.compute_capability_major,
                 d.compute_capability_minor, d.total_memory_bytes >> 20);
  }
  for (const auto& b : info.backends) {
    if (!b.available) spdlog::info("backend {} unavailable: {}", BackendKindName(b.kind), b.reason);
  }
  if (*policy == BackendKind::kAn1) {
    for (const auto& b : info.backends) {
      if (b.kind == BackendKind::kAn1 && !b.available) {
        spdlog::warn("--backend an1 but an1 is unavailable: requests asking for auto will fail");
      }
    }
  }
  if (options.auth_tokens_file.empty() && options.auth_client_certs_file.empty()) {
    spdlog::warn(
        "no authentication configured (--auth-tokens, --auth-client-certs): every caller may run "
        "every RPC");
  }
  if (!options.tls.enabled()) {
    spdlog::warn("gRPC is plaintext (no --tls-cert): use TLS on any network others can reach");
  } else {
    spdlog::info("gRPC over TLS{}", options.tls.client_ca_file.empty()
                                        ? ""
                                        : ", client certificates required (mutual TLS)");
  }
  spdlog::info("serving gRPC on port {} (from {}), default backend policy {}", (*server)->port(),
               options.listen, backend);
  if (!(*server)->unix_socket_path().empty()) {
    spdlog::info("serving gRPC also on unix:{}", (*server)->unix_socket_path());
  }
  if (!(*server)->shm_socket_path().empty()) {
    spdlog::info("shared memory descriptors are passed on {}", (*server)->shm_socket_path());
  }
  if (options.shared_memory.allow_open_by_name) {
    spdlog::warn(
        "--allow-shm-open-by-name: callers may make the server open any shared memory "
        "object its user can");
  }
  if ((*server)->metrics_port() != 0) {
    spdlog::info("serving metrics on port {} at /metrics", (*server)->metrics_port());
  }
  if (!ready_file.empty()) {
    std::ofstream out(ready_file);
    out << "grpc_port=" << (*server)->port() << "\nmetrics_port=" << (*server)->metrics_port()
        << "\n";
    if (!out) spdlog::error("cannot write --ready-file {}", ready_file);
  }

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("received {}, draining (grace {} s)", received == SIGTERM ? "SIGTERM" : "SIGINT",
               grace_seconds);
  const double grace_ms = std::min(grace_seconds, 86400.0) * 1000;  // at most a day
  (*server)->Shutdown(std::chrono::milliseconds(static_cast<int64_t>(grace_ms)));
  spdlog::info("stopped");
  return 0;
}

}  // namespace an1::server
