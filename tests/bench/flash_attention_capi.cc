// A C entry point to the an1 attention kernels (the family's dispatcher), loaded with ctypes by
// tests/bench/torch_peers.py so that our kernel and the PyTorch peers are timed in one process,
// interleaved call by call on the same stream and GPU state. Benchmark only: never installed.
#include <cuda_runtime.h>

#include <cstdio>
#include <string_view>

#include "kernels/attention/attention.h"

extern "C" {

// Tensors are device pointers, row-major contiguous: q, o (B, H, Sq, D); k, v (B, Hkv, Sk, D).
// dtype: 0 fp16, 1 bf16. kernel: "auto" (the dispatcher's choice), "sm80", "sm90" or "decode".
// Returns 0 when launched, else prints why and returns 1.
int an1_attention_with_kernel(const void* q, const void* k, const void* v, void* o, int64_t batch,
                              int64_t heads, int64_t kv_heads, int64_t q_len, int64_t kv_len,
                              int64_t head_dim, int dtype, int causal, float scale, void* stream,
                              const char* kernel) {
  namespace attention = an1::kernels::attention;
  attention::AttentionParams params;
  params.kernel = attention::AttentionKernel::kAuto;
  for (attention::AttentionKernel k : attention::kAllKernels) {
    if (attention::KernelName(k) == kernel) params.kernel = k;
  }
  if (params.kernel == attention::AttentionKernel::kAuto && std::string_view(kernel) != "auto") {
    std::fprintf(stderr, "an1_attention_with_kernel: no kernel named %s\n", kernel);
    return 1;
  }
  params.q = q, params.k = k, params.v = v, params.o = o;
  params.dtype = dtype == 0 ? an1::kernels::ElementType::kF16 : an1::kernels::ElementType::kBF16;
  params.batch = batch, params.heads = heads, params.kv_heads = kv_heads;
  params.q_len = q_len, params.kv_len = kv_len, params.head_dim = head_dim;
  params.causal = causal != 0;
  params.scale = scale;
  // The decode kernel's split-KV workspace: grown once, reused by every later call (a
  // cudaMalloc per call would be timed too). Benchmark only: one caller thread, one device.
  static void* workspace = nullptr;
  static std::size_t workspace_bytes = 0;
  // The family's cached properties of the current device: a read per call would be timed too.
  const cudaDeviceProp* props = nullptr;
  if (!attention::CurrentDeviceProperties(&props).ok()) {
    std::fprintf(stderr, "an1_flash_attention: no CUDA device\n");
    return 1;
  }
  const attention::LaunchPlan plan = attention::Plan(*props, params);
  const std::size_t needed = plan.workspace_bytes;
  if (needed > workspace_bytes) {
    cudaFree(workspace);
    workspace = nullptr;
    workspace_bytes = 0;
    if (cudaMalloc(&workspace, needed) != cudaSuccess) {
      std::fprintf(stderr, "an1_flash_attention: cannot allocate %zu bytes of workspace\n", needed);
      return 1;
    }
    workspace_bytes = needed;
  }
  const an1::kernels::KernelStatus status =
      attention::Run(plan, params, workspace, workspace_bytes, static_cast<cudaStream_t>(stream));
  if (!status.ok()) {
    std::fprintf(stderr, "an1_flash_attention: %s\n", status.message.c_str());
    return 1;
  }
  return 0;
}

// The dispatcher's choice (kernel "auto").
int an1_flash_attention(const void* q, const void* k, const void* v, void* o, int64_t batch,
                        int64_t heads, int64_t kv_heads, int64_t q_len, int64_t kv_len,
                        int64_t head_dim, int dtype, int causal, float scale, void* stream) {
  return an1_attention_with_kernel(q, k, v, o, batch, heads, kv_heads, q_len, kv_len, head_dim,
                                   dtype, causal, scale, stream, "auto");
}
}

// --- Paged attention (kernels/attention/decode/paged.h), for tests/bench/paged_bench.py.
#include <vector>

#include "kernels/attention/decode/paged.h"

namespace {

// The one prepared problem: its plan, uploaded metadata and workspace. Benchmark only: one caller
// thread, one device; an1_paged_prepare replaces it.
struct PreparedPaged {
  an1::kernels::attention::decode::PagedProblem problem;
  an1::kernels::attention::decode::PagedPlan plan;
  void* metadata = nullptr;
  void* workspace = nullptr;
};
PreparedPaged prepared_paged;

}  // namespace

extern "C" {

// Plans a ragged batch: cu_seqlens_q (batch + 1) and kv_lens (batch) in host memory. Returns 0,
// or prints why and returns 1. The label of the kernel is copied into `label` (64 bytes).
int an1_paged_prepare(const int32_t* cu_seqlens_q, const int32_t* kv_lens, int64_t batch,
                      int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t num_pages,
                      int64_t page_size, int64_t max_pages_per_seq, int dtype, int causal,
                      float scale, char* label) {
  namespace paged = an1::kernels::attention::decode;
  namespace attention = an1::kernels::attention;
  PreparedPaged& s = prepared_paged;
  cudaFree(s.metadata);
  cudaFree(s.workspace);
  s = {};
  paged::PagedProblem& p = s.problem;
  p.dtype = dtype == 0 ? an1::kernels::ElementType::kF16 : an1::kernels::ElementType::kBF16;
  p.batch = batch, p.total_q = cu_seqlens_q[batch], p.heads = heads, p.kv_heads = kv_heads;
  p.head_dim = head_dim, p.num_pages = num_pages, p.page_size = page_size;
  p.max_pages_per_seq = max_pages_per_seq;
  p.causal = causal != 0, p.scale = scale;
  const cudaDeviceProp* props = nullptr;
  if (!attention::CurrentDeviceProperties(&props).ok()) {
    std::fprintf(stderr, "an1_paged_prepare: no CUDA device\n");
    return 1;
  }
  if (std::string why = paged::PagedSupported(*props, p); !why.empty()) {
    std::fprintf(stderr, "an1_paged_prepare: %s\n", why.c_str());
    return 1;
  }
  std::vector<paged::PagedSpan> spans;
  for (int64_t b = 0; b < batch; ++b) {
    spans.push_back({cu_seqlens_q[b], cu_seqlens_q[b + 1] - cu_seqlens_q[b], kv_lens[b]});
  }
  s.plan = paged::PlanPaged(*props, p, spans);
  const std::size_t bytes = s.plan.metadata.size() * sizeof(int32_t);
  if (cudaMalloc(&s.metadata, bytes) != cudaSuccess ||
      cudaMemcpy(s.metadata, s.plan.metadata.data(), bytes, cudaMemcpyHostToDevice) !=
          cudaSuccess ||
      (s.plan.workspace_bytes > 0 &&
       cudaMalloc(&s.workspace, s.plan.workspace_bytes) != cudaSuccess)) {
    std::fprintf(stderr, "an1_paged_prepare: cannot allocate device memory\n");
    return 1;
  }
  std::snprintf(label, 64, "%s", s.plan.label.c_str());
  return 0;
}

// Runs the prepared problem on device tensors: q, o (total_q, H, D); caches (num_pages,
// page_size, Hkv, D); page_table (batch, max_pages_per_seq), cu_seqlens_q, kv_lens int32.
int an1_paged_run(const void* q, void* k_cache, void* v_cache, const int32_t* page_table,
                  const int32_t* cu_seqlens_q, const int32_t* kv_lens, void* o, void* stream) {
  namespace paged = an1::kernels::attention::decode;
  const PreparedPaged& s = prepared_paged;
  paged::PagedBuffers b;
  b.q = q, b.k_cache = k_cache, b.v_cache = v_cache, b.page_table = page_table;
  b.cu_seqlens_q = cu_seqlens_q, b.kv_lens = kv_lens, b.o = o;
  b.metadata = static_cast<const int32_t*>(s.metadata), b.workspace = s.workspace;
  const an1::kernels::KernelStatus status =
      paged::RunPaged(s.problem, s.plan, b, static_cast<cudaStream_t>(stream));
  if (!status.ok()) {
    std::fprintf(stderr, "an1_paged_run: %s\n", status.message.c_str());
    return 1;
  }
  return 0;
}
}
