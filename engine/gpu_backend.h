// GPU execution (CUDA builds only): a GpuContext per device holds its streams, stream-ordered
// memory pool, pinned staging buffers, cuBLASLt runner and health; GpuBackend runs requests on
// it, as the readable baseline (cuBLASLt's first algorithm, unfused attention) or as an1 (tuned
// cuBLASLt; the fused attention kernels come later).
//
// Thread-safety: each slot (stream, workspace, staging) is used by one executor thread at a
// time; everything else is safe to share.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/thread_pool.h"
#include "kernels/gemm.h"

namespace an1 {

class GpuContext {
 public:
  // Creates `slots` streams (with workspaces) on device `index`. Errors: UNAVAILABLE when the
  // device cannot be initialised, UNIMPLEMENTED when cuBLASLt cannot be loaded.
  static StatusOr<std::unique_ptr<GpuContext>> Create(int index, int slots);
  ~GpuContext();

  int index() const { return index_; }
  int slots() const { return static_cast<int>(slots_.size()); }
  bool healthy() const { return healthy_.load(); }
  std::string fault() const;

  // Takes the device out of service after a sticky error; later requests get UNAVAILABLE.
  void MarkFaulty(const std::string& reason);
  // Launches a kernel that faults the device: a test hook for the fault paths.
  void InjectFaultForTesting();

  struct Slot {
    cudaStream_t stream = nullptr;
    void* workspace = nullptr;     // kernels::kGemmWorkspaceBytes of device memory
    std::byte* staging = nullptr;  // pinned host memory
    std::size_t staging_bytes = 0;
    // Device memory for uploads, outputs and scratch, kept between requests and grown when a
    // request needs more: a fresh multi-GiB stream-ordered allocation per request costs tens of
    // microseconds, which is most of the service overhead of a CUDA IPC request.
    void* device = nullptr;
    std::size_t device_bytes = 0;
    cudaEvent_t events[4] = {};  // before upload, after upload, after compute, after download
  };
  Slot& slot(int i) { return slots_[i]; }
  kernels::GemmRunner& gemm() { return *gemm_; }
  // Host threads that copy between request memory and the pinned staging buffers: one thread
  // copies at a fraction of what the host's memory bandwidth allows.
  ThreadPool& copy_pool() { return copy_pool_; }

  // Makes the slot's pinned staging buffer at least `bytes` long. RESOURCE_EXHAUSTED on failure.
  Status EnsureStaging(Slot& slot, std::size_t bytes);
  // Makes the slot's device buffer at least `bytes` long (stream-ordered; on out-of-memory the
  // old buffer is released, the pool trimmed and the allocation retried once).
  // RESOURCE_EXHAUSTED when it still fails.
  Status EnsureDevice(Slot& slot, std::size_t bytes);
  // Maps a kernels-layer error to a Status, taking the device out of service on a fault.
  Status Check(const kernels::KernelStatus& status);
  Status CheckCuda(cudaError_t error, const char* what);

 private:
  explicit GpuContext(int index) : index_(index), copy_pool_(kCopyThreads) {}
  static constexpr int kCopyThreads = 3;

  int index_;
  std::vector<Slot> slots_;
  std::unique_ptr<kernels::GemmRunner> gemm_;
  ThreadPool copy_pool_;
  std::atomic<bool> healthy_{true};
  mutable std::mutex fault_mutex_;
  std::string fault_;
};

class GpuBackend final : public Backend {
 public:
  enum class Flavor { kBaseline, kAn1 };
  GpuBackend(GpuContext* context, Flavor flavor) : context_(context), flavor_(flavor) {}

  std::string Unsupported(OpKind op) const override;
  std::string UnsupportedAttention(const ValidatedAttention& problem) const override;
  Status Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                   std::span<std::byte> output, const ExecutionContext& context,
                   ExecutionTimes* times) override;
  Status Matmul(const ValidatedMatmul& problem, const TensorView& a, const TensorView& b,
                std::span<std::byte> output, const ExecutionContext& context,
                ExecutionTimes* times) override;

 private:
  GpuContext* context_;
  Flavor flavor_;
};

}  // namespace an1
