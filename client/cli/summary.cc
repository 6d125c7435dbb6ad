// The figures of one case (summary.h).
#include "client/cli/summary.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace an1::cli {

double VisiblePairs(int64_t q_len, int64_t kv_len, bool causal) {
  if (!causal) return static_cast<double>(q_len) * static_cast<double>(kv_len);
  double pairs = 0;
  for (int64_t i = 0; i < q_len; ++i) {
    pairs += static_cast<double>(std::clamp<int64_t>(i + kv_len - q_len + 1, 0, kv_len));
  }
  return pairs;
}

Summary Summarize(const LoadResult& load, const BenchFlags& flags, const Shape& shape) {
  Summary s;
  std::vector<double> compute, server, rtt;
  double joules = 0, tokens = 0;
  bool all_energy = !load.samples.empty();
  std::set<std::string> kernels;
  for (const Sample& x : load.samples) {
    if (!x.kernel.empty()) kernels.insert(x.kernel);
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
  for (const std::string& kernel : kernels) s.kernels += (s.kernels.empty() ? "" : ",") + kernel;
  for (const auto& [name, count] : load.errors) {
    s.errors += count;
    s.error_text += (s.error_text.empty() ? "" : "; ") + name + " x" + std::to_string(count);
  }
  return s;
}

}  // namespace an1::cli
