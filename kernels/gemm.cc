#include "kernels/gemm.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "kernels/cuda_check.h"

namespace an1::kernels {
namespace {

constexpr int kTuningCandidates = 8;  // top heuristic suggestions timed by kTunedFastest
constexpr int kTuningRuns = 3;        // timed runs per candidate after one warm-up

cudaDataType_t CudaType(ElementType t) {
  switch (t) {
    case ElementType::kF16:
      return CUDA_R_16F;
    case ElementType::kBF16:
      return CUDA_R_16BF;
    case ElementType::kF32:
      return CUDA_R_32F;
  }
  return CUDA_R_32F;
}

// The largest power of two (up to 256) that divides the address: plans are chosen for it.
uint32_t Alignment(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

std::string PlanKey(const GemmProblem& p, AlgoPolicy policy, uint32_t align_a, uint32_t align_b,
                    uint32_t align_c) {
  char key[256];
  std::snprintf(key, sizeof(key),
                "%d%d|%lld,%lld,%lld|%lld,%lld,%lld|%lld,%lld,%lld|%d|%d%d%d|%d|%u,%u,%u",
                p.transpose_a, p.transpose_b, (long long)p.m, (long long)p.n, (long long)p.k,
                (long long)p.lda, (long long)p.ldb, (long long)p.ldc, (long long)p.stride_a,
                (long long)p.stride_b, (long long)p.stride_c, p.batch, (int)p.ab_type,
                (int)p.c_type, p.allow_tf32, (int)policy, align_a, align_b, align_c);
  return key;
}

}  // namespace

// Descriptors of one shape and the algorithm chosen for it. Immutable once built.
struct GemmRunner::Plan {
  const CublasLtApi* api = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (c) api->MatrixLayoutDestroy(c);
    if (b) api->MatrixLayoutDestroy(b);
    if (a) api->MatrixLayoutDestroy(a);
    if (desc) api->MatmulDescDestroy(desc);
  }
};

KernelStatus GemmRunner::Create(std::unique_ptr<GemmRunner>* runner) {
  std::string error;
  const CublasLtApi* api = LoadCublasLt(&error);
  if (api == nullptr) return KernelStatus::Error(KernelStatus::Kind::kUnsupported, error);
  cublasLtHandle_t handle = nullptr;
  if (cublasStatus_t s = api->Create(&handle); s != CUBLAS_STATUS_SUCCESS) {
    return KernelStatus::Error(KernelStatus::Kind::kInternal,
                               std::string("cublasLtCreate: ") + api->GetStatusString(s));
  }
  runner->reset(new GemmRunner(api, handle));
  return KernelStatus::Ok();
}

GemmRunner::GemmRunner(const CublasLtApi* api, cublasLtHandle_t handle)
    : api_(api), handle_(handle) {}

GemmRunner::~GemmRunner() {
  plans_.clear();
  api_->Destroy(handle_);
}

std::size_t GemmRunner::cached_plans() const {
  std::lock_guard lock(mutex_);
  return plans_.size();
}

KernelStatus GemmRunner::Launch(const Plan& plan, const cublasLtMatmulAlgo_t& algo, float alpha,
                                const void* a, const void* b, void* c, void* workspace,
                                cudaStream_t stream) {
  const float beta = 0.0f;
  const cublasStatus_t s =
      api_->Matmul(handle_, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, c, plan.c, c, plan.c,
                   &algo, workspace, kGemmWorkspaceBytes, stream);
  if (s == CUBLAS_STATUS_SUCCESS) return KernelStatus::Ok();
  if (s == CUBLAS_STATUS_EXECUTION_FAILED) {
    // cuBLASLt may have consumed the CUDA error already: never report such a failure as OK.
    KernelStatus cuda = FromCuda(cudaGetLastError(), "cublasLtMatmul execution");
    if (!cuda.ok()) return cuda;
    return KernelStatus::Error(KernelStatus::Kind::kInternal, "cublasLtMatmul execution failed");
  }
  return KernelStatus::Error(KernelStatus::Kind::kInternal,
                             std::string("cublasLtMatmul: ") + api_->GetStatusString(s));
}

KernelStatus GemmRunner::BuildPlan(const GemmProblem& p, const void* a, const void* b, void* c,
                                   AlgoPolicy policy, void* workspace, cudaStream_t stream,
                                   std::shared_ptr<Plan>* out) {
  auto plan = std::make_shared<Plan>();
  plan->api = api_;
  auto fail = [&](const char* what, cublasStatus_t s) {
    return KernelStatus::Error(s == CUBLAS_STATUS_NOT_SUPPORTED ? KernelStatus::Kind::kUnsupported
                                                                : KernelStatus::Kind::kInternal,
                               std::string(what) + ": " + api_->GetStatusString(s));
  };
  const bool tf32 = p.allow_tf32 && p.ab_type == ElementType::kF32;
  cublasStatus_t s = api_->MatmulDescCreate(
      &plan->desc, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s != CUBLAS_STATUS_SUCCESS) return fail("cublasLtMatmulDescCreate", s);
  const cublasOperation_t op_a = p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  api_->MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a));
  api_->MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b));

  auto layout = [&](cublasLtMatrixLayout_t* l, ElementType t, int64_t rows, int64_t cols,
                    int64_t ld, int64_t stride) {
    cublasStatus_t r = api_->MatrixLayoutCreate(l, CudaType(t), rows, cols, ld);
    if (r != CUBLAS_STATUS_SUCCESS) return r;
    const int32_t batch = p.batch;
    api_->MatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch));
    return api_->MatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                          sizeof(stride));
  };
  // Stored shapes: A is m x k (k x m when transposed), B is k x n (n x k when transposed).
  if ((s = layout(&plan->a, p.ab_type, p.transpose_a ? p.k : p.m, p.transpose_a ? p.m : p.k, p.lda,
                  p.stride_a)) != CUBLAS_STATUS_SUCCESS ||
      (s = layout(&plan->b, p.ab_type, p.transpose_b ? p.n : p.k, p.transpose_b ? p.k : p.n, p.ldb,
                  p.stride_b)) != CUBLAS_STATUS_SUCCESS ||
      (s = layout(&plan->c, p.c_type, p.m, p.n, p.ldc, p.stride_c)) != CUBLAS_STATUS_SUCCESS) {
    return fail("cublasLtMatrixLayoutCreate", s);
  }

  cublasLtMatmulPreference_t preference = nullptr;
  if ((s = api_->MatmulPreferenceCreate(&preference)) != CUBLAS_STATUS_SUCCESS) {
    return fail("cublasLtMatmulPreferenceCreate", s);
  }
  const uint64_t workspace_bytes = kGemmWorkspaceBytes;
  api_->MatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                     &workspace_bytes, sizeof(workspace_bytes));
  // The plan is reused for every pointer with the same alignment (part of the plan key).
  const uint32_t align_a = Alignment(a), align_b = Alignment(b), align_c = Alignment(c);
  api_->MatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                     &align_a, sizeof(align_a));
  api_->MatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                     &align_b, sizeof(align_b));
  api_->MatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                     &align_c, sizeof(align_c));
  api_->MatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                     &align_c, sizeof(align_c));
  const int wanted = policy == AlgoPolicy::kTunedFastest ? kTuningCandidates : 1;
  std::vector<cublasLtMatmulHeuristicResult_t> results(wanted);
  int found = 0;
  s = api_->MatmulAlgoGetHeuristic(handle_, plan->desc, plan->a, plan->b, plan->c, plan->c,
                                   preference, wanted, results.data(), &found);
  api_->MatmulPreferenceDestroy(preference);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    return fail("no cuBLASLt algorithm for this GEMM",
                s == CUBLAS_STATUS_SUCCESS ? CUBLAS_STATUS_NOT_SUPPORTED : s);
  }
  plan->algo = results[0].algo;

  if (policy == AlgoPolicy::kTunedFastest && found > 1) {
    cudaEvent_t start, stop;
    if (KernelStatus e = FromCuda(cudaEventCreate(&start), "cudaEventCreate"); !e.ok()) return e;
    if (KernelStatus e = FromCuda(cudaEventCreate(&stop), "cudaEventCreate"); !e.ok()) {
      cudaEventDestroy(start);
      return e;
    }
    float best = 1e30f;
    for (int i = 0; i < found; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
      if (!Launch(*plan, results[i].algo, p.alpha, a, b, c, workspace, stream).ok()) continue;
      std::vector<float> times;
      for (int r = 0; r < kTuningRuns; ++r) {
        cudaEventRecord(start, stream);
        KernelStatus run = Launch(*plan, results[i].algo, p.alpha, a, b, c, workspace, stream);
        cudaEventRecord(stop, stream);
        float ms = 0;
        if (!run.ok() || cudaEventSynchronize(stop) != cudaSuccess ||
            cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) {
          break;
        }
        times.push_back(ms);
      }
      if (times.size() != kTuningRuns) continue;
      std::sort(times.begin(), times.end());
      if (times[kTuningRuns / 2] < best) {
        best = times[kTuningRuns / 2];
        plan->algo = results[i].algo;
      }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    // A candidate that faulted the device shows here; anything else was only a skipped candidate.
    const cudaError_t err = cudaStreamSynchronize(stream);
    if (IsStickyCudaError(err)) return FromCuda(err, "GEMM tuning");
    cudaGetLastError();
  }
  *out = std::move(plan);
  return KernelStatus::Ok();
}

KernelStatus GemmRunner::Run(const GemmProblem& p, const void* a, const void* b, void* c,
                             AlgoPolicy policy, void* workspace, cudaStream_t stream) {
  const std::string key = PlanKey(p, policy, Alignment(a), Alignment(b), Alignment(c));
  std::shared_ptr<Plan> plan;
  {
    std::lock_guard lock(mutex_);
    if (auto it = plans_.find(key); it != plans_.end()) {
      it->second.last_use = ++use_clock_;
      plan = it->second.plan;
    }
  }
  if (!plan) {
    // Built outside the lock: tuning takes milliseconds, other shapes need not wait.
    KernelStatus built = BuildPlan(p, a, b, c, policy, workspace, stream, &plan);
    if (!built.ok()) return built;
    std::lock_guard lock(mutex_);
    // Shapes come from clients (and paged attention makes one per KV length), so the cache is
    // bounded: when full, the least recently used plan goes (a caller still holding it keeps it
    // alive; the scan runs only when a new plan was built, which costs far more).
    if (plans_.size() >= kMaxCachedPlans) {
      plans_.erase(std::min_element(plans_.begin(), plans_.end(), [](const auto& a, const auto& b) {
        return a.second.last_use < b.second.last_use;
      }));
    }
    // A concurrent builder of the same shape may have won: either plan is fine.
    plans_.emplace(key, CachedPlan{plan, ++use_clock_});
  }
  return Launch(*plan, plan->algo, p.alpha, a, b, c, workspace, stream);
}

}  // namespace an1::kernels
