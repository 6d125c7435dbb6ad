// The concurrent load run (load.h).
#include "client/cli/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <latch>
#include <mutex>
#include <random>
#include <thread>

namespace an1::cli {

using Clock = std::chrono::steady_clock;

Shape ShapeFor(const BenchFlags& flags, int64_t seq_len) {
  return {flags.batch, flags.heads, flags.kv_heads ? flags.kv_heads : flags.heads, seq_len,
          flags.head_dim};
}

LoadResult RunLoad(Client& client, const BenchFlags& flags, const Shape& shape, v1::Backend backend,
                   const std::function<void()>& at_start) {
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
        s.kernel = call.info.kernel();
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

}  // namespace an1::cli
