// The interface every execution backend implements (CPU reference now; GPU ones later).
//
// A backend receives problems that are already validated (validation.h): shapes agree, byte
// counts match and the output span has exactly output.byte_size bytes. Implementations must be
// safe to call from several executor threads at once.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "engine/status.h"
#include "engine/validation.h"

namespace an1 {

class Backend {
 public:
  virtual ~Backend() = default;

  // Where it runs, for responses and logs: "cpu" or "cuda:N".
  virtual std::string device() const = 0;

  // Writes softmax(q k^T * scale + mask) v into `output`. Returns OK, or an error status
  // (RESOURCE_EXHAUSTED when memory runs out, UNIMPLEMENTED outside the backend's coverage).
  virtual Status Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                           std::span<std::byte> output) = 0;

  // Writes a @ b (batch-broadcast) into `output`. Same error contract as Attention.
  virtual Status Matmul(const ValidatedMatmul& problem, const TensorView& a, const TensorView& b,
                        std::span<std::byte> output) = 0;
};

}  // namespace an1
