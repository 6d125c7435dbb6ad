// The CPU reference backend: readable, multithreaded, fp32 accumulation for every dtype.
//
// It is the `baseline` on hosts without a usable GPU and the reference the GPU kernels are
// checked against. Thread-safe; it shares one ThreadPool among concurrent requests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/thread_pool.h"

namespace an1 {

class CpuBackend final : public Backend {
 public:
  // ExecutionInfo.kernel of every op this backend runs.
  static constexpr const char* kKernelLabel = "baseline.cpu";

  // `threads` as for ThreadPool (0: one per core).
  explicit CpuBackend(int threads);

  Status Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                   std::span<std::byte> output, const ExecutionContext& context = {},
                   ExecutionTimes* times = nullptr) override;
  Status Matmul(const ValidatedMatmul& problem, const TensorView& a, const TensorView& b,
                std::span<std::byte> output, const ExecutionContext& context = {},
                ExecutionTimes* times = nullptr) override;
  // cpu_paged_attention.cc
  std::string UnsupportedPagedAttention(const ValidatedPagedAttention& problem) const override;
  Status PagedAttention(const ValidatedPagedAttention& problem,
                        const std::vector<PagedSequence>& sequences,
                        const PagedAttentionInputs& inputs, std::span<std::byte> output,
                        const ExecutionContext& context = {},
                        ExecutionTimes* times = nullptr) override;

 private:
  ThreadPool pool_;
};

}  // namespace an1
