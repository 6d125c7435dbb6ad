// The figures of one (shape, backend) case of `an1 bench`, from its load run: medians and p99 of
// compute and round-trip time, causal-aware and dense TFLOP/s, tokens/s, energy per token.
#pragma once

#include <optional>
#include <string>

#include "client/cli/load.h"

namespace an1::cli {

struct Summary {
  double latency_ms = 0, p99_ms = 0, server_ms = 0, e2e_ms = 0, e2e_p99_ms = 0;
  double tflops = 0, tflops_dense = 0, tokens_per_s = 0;
  std::optional<double> joules_per_token;  // when the server measured every call's energy
  int requests = 0, errors = 0;
  std::string error_text;  // "RESOURCE_EXHAUSTED x3; ..."
  std::string kernels;     // the kernels that ran the calls, "an1.fwd.sm90" (comma-separated)
};

// Query-key pairs the mask lets through (bottom-right causal), for causal-aware FLOPs.
double VisiblePairs(int64_t q_len, int64_t kv_len, bool causal);

Summary Summarize(const LoadResult& load, const BenchFlags& flags, const Shape& shape);

}  // namespace an1::cli
