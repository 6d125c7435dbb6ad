// The interface every execution backend implements: the CPU reference, and per GPU the GPU
// baseline and the accelerated an1 backend.
//
// A backend receives problems that are already validated (validation.h): shapes agree, byte
// counts match and the output span has exactly output.byte_size bytes. Implementations must be
// safe to call from several executor threads at once, each passing its own slot.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/paged_validation.h"
#include "engine/status.h"
#include "engine/validation.h"

namespace an1 {

enum class OpKind { kAttention, kMatmul, kPagedAttention };

// Which executor of the device runs the call: GPU backends keep one stream, workspace and
// staging buffer per slot, so that requests on different slots overlap.
struct ExecutionContext {
  int slot = 0;
  // -1: the output span is host memory; N: memory of CUDA device N.
  int output_device = -1;
  // OK while the request should go on; CANCELLED or DEADLINE_EXCEEDED once its client left or
  // its deadline passed. Backends that compute in pieces (the CPU) ask between pieces.
  std::function<Status()> should_stop;
};

// Times a backend measured itself (on the GPU, with events). Negative: not measured, the engine
// uses its host clock instead.
struct ExecutionTimes {
  double compute_seconds = -1;
  double copy_seconds = 0;       // host <-> device transfers, staging included
  std::size_t copied_bytes = 0;  // tensor bytes moved between host and device
  // The kernel that ran (ExecutionInfo.kernel): "baseline.cpu", "an1.fwd.sm90", ... Set before
  // the work starts, so that a request that fails on the backend is labelled too.
  std::string kernel;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Empty when the backend implements `op`; otherwise why not (shown to clients).
  virtual std::string Unsupported(OpKind /*op*/) const { return ""; }
  // Empty when the backend covers this attention problem (dtype, head_dim, ...); otherwise why.
  virtual std::string UnsupportedAttention(const ValidatedAttention& /*problem*/) const {
    return "";
  }

  // Writes softmax(q k^T * scale + mask) v into `output`, and when `inputs.lse` is not empty each
  // row's log-sum-exp into it (host memory, (B, H, Sq) floats). Returns OK, or RESOURCE_EXHAUSTED
  // (memory), UNIMPLEMENTED (outside the backend's coverage), UNAVAILABLE (device fault),
  // INTERNAL.
  virtual Status Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                           std::span<std::byte> output, const ExecutionContext& context,
                           ExecutionTimes* times) = 0;

  // Writes a @ b (batch-broadcast) into `output`. Same error contract as Attention.
  virtual Status Matmul(const ValidatedMatmul& problem, const TensorView& a, const TensorView& b,
                        std::span<std::byte> output, const ExecutionContext& context,
                        ExecutionTimes* times) = 0;

  // Empty when the backend runs paged attention; otherwise why not (shown to clients, refused
  // with UNIMPLEMENTED before the request is queued).
  virtual std::string UnsupportedPagedAttention(const ValidatedPagedAttention& /*problem*/) const {
    return kNoPagedAttention;
  }
  // With problem.append, first writes k_new and v_new into inputs.k_cache_writable and
  // v_cache_writable (recording the ranges in inputs.appended when set); then, with the caches as
  // they are after the append, writes each (row, head)'s attention into `output` (total_q, H, D)
  // and with return_lse its log-sum-exp into inputs.lse. `sequences` are the request's
  // (ValidatePagedIndices). Same error contract as Attention; the default is UNIMPLEMENTED.
  virtual Status PagedAttention(const ValidatedPagedAttention& /*problem*/,
                                const std::vector<PagedSequence>& /*sequences*/,
                                const PagedAttentionInputs& /*inputs*/,
                                std::span<std::byte> /*output*/,
                                const ExecutionContext& /*context*/, ExecutionTimes* /*times*/) {
    return UnimplementedError(kNoPagedAttention);
  }

  // Why a backend without its own paged attention refuses it.
  static constexpr const char* kNoPagedAttention = "this backend has no paged attention";
};

}  // namespace an1
