// The load run of `an1 bench` and `an1 power`: `concurrency` clients, each with its own random
// inputs and its own region (for shm and cuda-ipc), warm up, wait for each other, then send
// --iters calls each (or for --duration). Every call sent is answered; each answer is kept.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "client/cli/bench.h"

namespace an1::cli {

// The attention shape of one case.
struct Shape {
  int64_t batch, heads, kv_heads, seq_len, head_dim;
};
Shape ShapeFor(const BenchFlags& flags, int64_t seq_len);

// One measured call.
struct Sample {
  double compute_ms = 0, server_ms = 0, round_trip_ms = 0;
  std::optional<double> energy_joules;  // when the server measured the request's energy
  uint64_t tokens = 0;
  std::string device;  // "cuda:N" that ran it
  std::string kernel;  // the kernel that ran it (ExecutionInfo.kernel)
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

// Runs the load of `flags` (--concurrency, --warmup, --iters or --duration, --transport) on
// `backend`. `at_start` runs once, when the measured phase starts (after every client's setup
// and warm-up).
LoadResult RunLoad(Client& client, const BenchFlags& flags, const Shape& shape, v1::Backend backend,
                   const std::function<void()>& at_start = {});

}  // namespace an1::cli
