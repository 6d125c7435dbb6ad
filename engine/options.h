// Configuration of the engine: plain structs with their defaults beside each field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/license/token.h"

namespace an1 {

enum class BackendKind { kAuto, kAn1, kBaseline };

// Size limits every request is validated against.
struct Limits {
  // Largest single tensor, input or output, in bytes. 1 GiB holds a 2048-token fp16 attention
  // at B=8, H=32, D=128 (128 MiB per tensor) with room to spare.
  std::size_t max_tensor_bytes = std::size_t{1} << 30;
  // Largest rank accepted for matmul operands (attention tensors are always rank 4).
  int max_rank = 8;
};

// Where the license comes from. The token itself is never logged or echoed in messages.
struct LicenseOptions {
  std::string token;       // empty: no license configured
  std::string source;      // for messages: "AN1_LICENSE_KEY" or "--license-file PATH"
  std::string load_error;  // why the source could not be read, when it could not
  // The public keys licenses may be signed with: compiled into an1d, injected by tests.
  std::vector<license::PublicKey> trusted_keys;
  // Unix time in seconds; the system clock when empty. Read at every request, so that expiry
  // is noticed while the server runs.
  std::function<int64_t()> clock;
  // A file keeping the latest time the clock has read (a high-water mark), so that a clock
  // set back past it, also across restarts, cannot make an expired license valid again. Empty:
  // kept in memory for this process only. Its folder must be writable (a volume in a container).
  std::string clock_state_path;
};

struct EngineOptions {
  Limits limits;
  // Policy for requests that ask for kAuto: kAuto picks an1 when available, else baseline.
  BackendKind default_policy = BackendKind::kAuto;
  // Requests waiting to run on one device, beyond which new ones get RESOURCE_EXHAUSTED.
  int max_queue_depth = 64;
  // Tensor bytes (inputs and outputs) of admitted requests not yet finished, beyond which new
  // ones get RESOURCE_EXHAUSTED. 8 GiB holds a dozen 2048-token attention requests.
  std::size_t max_inflight_bytes = std::size_t{8} << 30;
  // CPU mode: requests executed concurrently. Each CPU request already uses every core, so 1.
  int executor_threads = 1;
  // GPU mode: CUDA streams per GPU, each with its own executor thread, so that the copies of one
  // request overlap the compute of another.
  int streams_per_gpu = 2;
  // GPU mode: how long an idle executor polls for new work before it sleeps. Polling costs a
  // core while it lasts and saves the tens of microseconds a sleeping thread takes to wake.
  int executor_spin_us = 2000;
  // GPU mode: how an executor waits for its stream's work (the CUDA context's schedule flag,
  // cudaDeviceSchedule*): kYield polls but yields the core between polls (the default: on the
  // H200 host it took 30 us less per paged decode step and 100 us less per tiny call than kSpin,
  // whose pollers compete with gRPC's threads for the cores: tests/bench/RESULTS.md), kSpin polls
  // without yielding, kBlock sleeps until the GPU interrupts (a core free, a wake-up per request).
  enum class GpuWait { kSpin, kYield, kBlock };
  GpuWait gpu_wait = GpuWait::kYield;
  // How often each GPU's energy counter is read for the per-request energy (energy_meter.h).
  // A read takes milliseconds inside the driver, so not too often.
  int energy_sample_ms = 50;
  // Threads of the CPU compute pool; 0 means std::thread::hardware_concurrency().
  int cpu_threads = 0;
  // Skip GPU discovery even when one is present (tests, CPU-only deployments).
  bool disable_gpu = false;
  LicenseOptions license;
};

}  // namespace an1
