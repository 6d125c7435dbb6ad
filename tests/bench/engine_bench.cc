// GPU engine benchmark (not a test): times the engine's GPU baseline attention and its cuBLASLt
// matmul (baseline and tuned an1) through the Engine API, medians after warm-up, and the
// throughput of 8 concurrent submitters. Run beside tests/bench/torch_peers.py in the same call.
//
//   engine_bench [--iters N] [--warmup N]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "engine/license/ed25519.h"
#include "tests/engine_runner.h"

namespace an1 {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::vector<std::byte> RandomBytes(std::size_t elements, DType dtype, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(elements);
  for (float& x : values) x = normal(rng);
  std::vector<std::byte> bytes(elements * DTypeSize(dtype));
  ConvertFromFloat(dtype, values.data(), elements, bytes.data());
  return bytes;
}

std::unique_ptr<Engine> MakeEngine() {
  const license::Ed25519Seed seed = *license::Ed25519GenerateSeed();
  license::LicenseClaims claims{"BENCH", "bench", 0, 0, int64_t{1} << 40, {"an1"}, 0, {}, "bench"};
  EngineOptions options;
  options.limits.max_tensor_bytes = std::size_t{2} << 30;
  options.max_inflight_bytes = std::size_t{16} << 30;
  options.license.token = *license::IssueToken(claims, seed);
  options.license.trusted_keys = {{"bench", *license::Ed25519PublicKeyOf(seed)}};
  auto engine = Engine::Create(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "engine: %s\n", engine.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(engine).value();
}

struct Timing {
  double compute_ms, copy_ms, total_ms;
};

template <typename MakePrepared>
Timing TimeRequests(Engine& engine, MakePrepared make, int warmup, int iters) {
  std::vector<double> compute, copy, total;
  std::vector<std::byte> out;
  for (int i = 0; i < warmup + iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto run = testing::RunToCompletion(engine, make(), &out);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!run.status.ok()) {
      std::fprintf(stderr, "request failed: %s\n", run.status.ToString().c_str());
      std::exit(1);
    }
    if (i < warmup) continue;
    compute.push_back(run.report.compute_seconds * 1e3);
    copy.push_back(run.report.copy_seconds * 1e3);
    total.push_back(ms);
  }
  return {Median(compute), Median(copy), Median(total)};
}

int Main(int argc, char** argv) {
  int iters = 30, warmup = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--warmup")) warmup = std::atoi(argv[i + 1]);
  }
  auto engine = MakeEngine();
  const EngineInfo info = engine->Info();
  std::printf("device: %s, gpu_mode=%d\n",
              info.devices.empty() ? "none" : info.devices[0].name.c_str(), info.gpu_mode);
  std::printf("%-44s %10s %10s %10s %10s\n", "case", "gpu_ms", "copy_ms", "e2e_ms", "TFLOP/s");

  // Attention, B=8 H=32 S=2048 D=128 fp16 (the reference prefill shape of README and RESULTS.md).
  const int64_t B = 8, H = 32, S = 2048, D = 128;
  const std::size_t n = B * H * S * D;
  const auto q = RandomBytes(n, DType::kFloat16, 1), k = RandomBytes(n, DType::kFloat16, 2),
             v = RandomBytes(n, DType::kFloat16, 3);
  double back_to_back_ms = 0;
  for (bool causal : {true, false}) {
    AttentionInputs in{{DType::kFloat16, {B, H, S, D}, q},
                       {DType::kFloat16, {B, H, S, D}, k},
                       {DType::kFloat16, {B, H, S, D}, v},
                       causal,
                       {}};
    const double flops = 4.0 * B * H * S * S * D * (causal ? 0.5 : 1.0);
    for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
      const auto q2 = RandomBytes(n, dtype, 6), k2 = RandomBytes(n, dtype, 7),
                 v2 = RandomBytes(n, dtype, 8);
      AttentionInputs fused{{dtype, {B, H, S, D}, q2},
                            {dtype, {B, H, S, D}, k2},
                            {dtype, {B, H, S, D}, v2},
                            causal,
                            {}};
      Timing f = TimeRequests(
          *engine, [&] { return engine->PrepareAttention(fused, BackendKind::kAn1); }, warmup,
          iters);
      char name[96];
      std::snprintf(name, sizeof(name), "attention an1 %s %s 8x32x2048x128",
                    std::string(DTypeName(dtype)).c_str(), causal ? "causal" : "dense ");
      std::printf("%-44s %10.3f %10.3f %10.3f %10.1f\n", name, f.compute_ms, f.copy_ms, f.total_ms,
                  flops / (f.compute_ms * 1e-3) / 1e12);
    }
    Timing t = TimeRequests(
        *engine, [&] { return engine->PrepareAttention(in, BackendKind::kBaseline); }, warmup,
        iters);
    std::printf("%-44s %10.3f %10.3f %10.3f %10.1f\n",
                causal ? "attention baseline fp16 causal 8x32x2048x128"
                       : "attention baseline fp16 dense  8x32x2048x128",
                t.compute_ms, t.copy_ms, t.total_ms, flops / (t.compute_ms * 1e-3) / 1e12);
    if (causal) back_to_back_ms = t.compute_ms;
  }

  // Matmul at 4096^3 and 8192^3, fp16 and bf16, baseline and an1.
  for (int64_t size : {4096, 8192}) {
    for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
      const auto a = RandomBytes(size * size, dtype, 4), b = RandomBytes(size * size, dtype, 5);
      TensorView av{dtype, {size, size}, a}, bv{dtype, {size, size}, b};
      for (BackendKind backend : {BackendKind::kBaseline, BackendKind::kAn1}) {
        Timing t = TimeRequests(
            *engine, [&] { return engine->PrepareMatmul(av, bv, backend); }, warmup, iters);
        char name[96];
        std::snprintf(name, sizeof(name), "matmul %-8s %s %lld^3",
                      std::string(BackendKindName(backend)).c_str(),
                      std::string(DTypeName(dtype)).c_str(), (long long)size);
        std::printf("%-44s %10.3f %10.3f %10.3f %10.1f\n", name, t.compute_ms, t.copy_ms,
                    t.total_ms, 2.0 * size * size * size / (t.compute_ms * 1e-3) / 1e12);
      }
    }
  }

  // 8 concurrent submitters of the causal attention above.
  {
    AttentionInputs in{{DType::kFloat16, {B, H, S, D}, q},
                       {DType::kFloat16, {B, H, S, D}, k},
                       {DType::kFloat16, {B, H, S, D}, v},
                       true,
                       {}};
    constexpr int kClients = 8, kPerClient = 6;
    std::atomic<int> ok{0}, failed{0};
    std::vector<double> gpu_ms(kClients * kPerClient);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        std::vector<std::byte> out;
        for (int r = 0; r < kPerClient; ++r) {
          auto run = testing::RunToCompletion(
              *engine, engine->PrepareAttention(in, BackendKind::kBaseline), &out);
          (run.status.ok() ? ok : failed).fetch_add(1);
          gpu_ms[c * kPerClient + r] = run.report.compute_seconds * 1e3;
        }
      });
    }
    for (auto& t : clients) t.join();
    const double wall_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const int done = ok.load();
    std::printf(
        "concurrency 8: %d ok, %d failed, %.1f ms per request (wall / requests), "
        "back-to-back kernel %.3f ms, median kernel under load %.3f ms\n",
        done, failed.load(), wall_ms / std::max(done, 1), back_to_back_ms, Median(gpu_ms));
  }
  return 0;
}

}  // namespace
}  // namespace an1

int main(int argc, char** argv) { return an1::Main(argc, argv); }
