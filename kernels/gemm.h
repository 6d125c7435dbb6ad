// Strided-batched GEMM on cuBLASLt with per-shape plans (CUDA builds only).
//
// Conventions are cuBLAS's: matrices are column-major, C (m x n) = alpha * op(A) op(B). Row-major
// callers swap operands (C^T = B^T A^T). A GemmRunner belongs to one device; Run may be called
// from several threads on different streams at once (the plan cache is locked).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "kernels/cublaslt_api.h"
#include "kernels/element_type.h"
#include "kernels/kernel_status.h"

namespace an1::kernels {

struct GemmProblem {
  bool transpose_a = false, transpose_b = false;
  int64_t m = 0, n = 0, k = 0;  // C is m x n; op(A) is m x k; op(B) is k x n
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between batches; 0 broadcasts
  int32_t batch = 1;
  ElementType ab_type = ElementType::kF16;  // A and B
  ElementType c_type = ElementType::kF16;   // C (= D)
  bool allow_tf32 = false;                  // fp32 inputs may be rounded to TF32
  float alpha = 1.0f;
};

enum class AlgoPolicy {
  kFirstHeuristic,  // cuBLASLt's first suggestion (the readable baseline)
  kTunedFastest,    // the fastest of the top suggestions, timed once per shape (an1)
};

// Plans a GemmRunner keeps; past this, building a new one drops the least recently used.
inline constexpr std::size_t kMaxCachedPlans = 4096;

// 32 MiB: the largest workspace cuBLASLt's Hopper kernels ask for at these sizes.
inline constexpr std::size_t kGemmWorkspaceBytes = std::size_t{32} << 20;

class GemmRunner {
 public:
  // For the current device. Errors: kUnsupported when cuBLASLt cannot be loaded.
  static KernelStatus Create(std::unique_ptr<GemmRunner>* runner);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Enqueues the GEMM on `stream`. The first call for a shape builds (and, for kTunedFastest,
  // times) its plan; later calls reuse it. `workspace` holds kGemmWorkspaceBytes.
  KernelStatus Run(const GemmProblem& problem, const void* a, const void* b, void* c,
                   AlgoPolicy policy, void* workspace, cudaStream_t stream);

  std::size_t cached_plans() const;

 private:
  struct Plan;
  explicit GemmRunner(const CublasLtApi* api, cublasLtHandle_t handle);
  KernelStatus BuildPlan(const GemmProblem& problem, const void* a, const void* b, void* c,
                         AlgoPolicy policy, void* workspace, cudaStream_t stream,
                         std::shared_ptr<Plan>* plan);
  KernelStatus Launch(const Plan& plan, const cublasLtMatmulAlgo_t& algo, float alpha,
                      const void* a, const void* b, void* c, void* workspace, cudaStream_t stream);

  const CublasLtApi* api_;
  cublasLtHandle_t handle_;
  mutable std::mutex mutex_;
  struct CachedPlan {
    std::shared_ptr<Plan> plan;
    uint64_t last_use = 0;  // use_clock_ at its last lookup: the least recent goes first
  };
  std::map<std::string, CachedPlan> plans_;
  uint64_t use_clock_ = 0;
};

}  // namespace an1::kernels
