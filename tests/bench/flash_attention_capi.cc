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
