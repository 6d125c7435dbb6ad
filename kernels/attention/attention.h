// The attention-kernel family (CUDA builds only): softmax(q k^T * scale + mask) v on the GPU,
// through one parameter struct and four functions, whichever kernel runs it.
//
//   AttentionParams p = ...;                       // pointers, shapes, dtype, mask, scale
//   if (std::string why = Supported(props, p); !why.empty()) { ... }   // why not, in words
//   Run(p, workspace, WorkspaceBytes(p), stream);  // validates, selects a kernel, launches
//
// Kernels (AttentionKernel): kSm90, FlashAttention-3's design on Hopper (TMA, wgmma, warp
// specialisation; attention/sm90/), for prefill; kSm80, the FlashAttention-2 design on mma.sync
// (attention/sm80/), prefill where sm90 does not run; kDecode, flash-decoding for 1 to 16
// queries per sequence (attention/decode/). The dispatcher (attention.cc) picks decode for
// q_len <= 16, and otherwise sm90, then sm80. A new kernel joins the enum, kAllKernels and the
// dispatcher, and tests/kernels/attention_kernel_test.cc tests it with no change. Shared device
// code is in common/.
//
// Errors are KernelStatus values: kUnsupported (outside every kernel's coverage, with the
// reason, checked before any launch), kOutOfMemory, kDeviceFault, kInternal. Thread-safety: the
// functions may be called from any thread; Run enqueues on `stream` and does not synchronize.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernels/attention/decode/tiles.h"
#include "kernels/element_type.h"
#include "kernels/kernel_status.h"

namespace an1::kernels::attention {

// How q, k, v and o are laid out in memory.
enum class Layout {
  // Row-major and contiguous: q and o (batch, heads, q_len, head_dim), k and v
  // (batch, kv_heads, kv_len, head_dim), as PyTorch's SDPA takes them.
  kBhsd,
};

// Which kernel runs a problem. kAuto lets the dispatcher choose (SelectKernel).
enum class AttentionKernel {
  kAuto,
  kSm80,    // prefill: mma.sync m16n8k16, cp.async double buffering (FlashAttention-2 design)
  kSm90,    // prefill on Hopper: TMA, wgmma, warp-specialised persistent grid (FlashAttention-3)
  kDecode,  // 1-16 queries: a KV head's query rows packed in one tile, split-KV (flash-decoding)
};

// The whole host/kernel interface.
struct AttentionParams {
  // Device pointers of `dtype` elements, in `layout`; o must not overlap q, k or v.
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  // Optional fp32 output (batch, heads, q_len): each row's log-sum-exp of its scaled scores,
  // ln(sum_j exp(q_i . k_j * scale)) over the keys it sees (FlashAttention's softmax_lse);
  // -inf for a row that sees none. nullptr: not written.
  float* lse = nullptr;

  Layout layout = Layout::kBhsd;
  ElementType dtype = ElementType::kF16;
  int64_t batch = 0;
  int64_t heads = 0;     // query heads
  int64_t kv_heads = 0;  // heads % kv_heads == 0: query head h reads kv head h / (heads/kv_heads)
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int64_t head_dim = 0;
  bool causal = true;  // aligned bottom-right (attention/common/causal.h)
  // Multiplies q . k: any finite value (0 gives uniform weights), as long as the scaled scores
  // (q . k x scale x log2 e) stay finite in fp32; rows whose scaled scores overflow come out NaN.
  float scale = 0;
  AttentionKernel kernel = AttentionKernel::kAuto;
};

// What Run launches for a problem on a device, resolved once (Plan) and handed to Run, so that
// coverage, the kernel choice, the split and the workspace are worked out once per request.
struct LaunchPlan {
  AttentionKernel kernel = AttentionKernel::kAuto;  // kAuto: no kernel covers the problem
  std::string unsupported;                          // why not, when kernel is kAuto
  decode::Split split;  // the decode kernel's cut of the problem into blocks (decode/tiles.h)
  std::size_t workspace_bytes = 0;  // device memory Run needs
  // "an1.fwd.sm90", "an1.fwd.sm80", "an1.decode", "an1.decode.splitkv/N" (ExecutionInfo.kernel)
  std::string label;
};

// The plan for `params` on `device` (params.kernel, or the dispatcher's choice for kAuto).
LaunchPlan Plan(const cudaDeviceProp& device, const AttentionParams& params);

// "auto", "sm80", "sm90", "decode".
std::string_view KernelName(AttentionKernel kernel);

// Every kernel the dispatcher knows, kAuto excluded (for tests and benchmarks).
inline constexpr AttentionKernel kAllKernels[] = {AttentionKernel::kSm80, AttentionKernel::kSm90,
                                                  AttentionKernel::kDecode};

// The properties of the calling thread's current device, read once per device (a read costs
// far more than a launch). kInternal when there is no current device.
KernelStatus CurrentDeviceProperties(const cudaDeviceProp** props);

// Plan(device, params).unsupported: empty when `params.kernel` (or, for kAuto, some kernel)
// runs `params` on a device with `device`'s properties; otherwise why not, for people (e.g. "the
// an1 attention kernels take head_dim 64 or 128, not 96"). Pointers are not looked at, so a problem
// can be checked before its memory exists.
std::string Supported(const cudaDeviceProp& device, const AttentionParams& params);

// The kernel kAuto resolves to, or kAuto when none supports the problem.
AttentionKernel SelectKernel(const cudaDeviceProp& device, const AttentionParams& params);

// Plan(device, params).label: what Run would launch, as reported to clients
// (ExecutionInfo.kernel): "an1.fwd.sm90", "an1.fwd.sm80", or "an1.decode.splitkv/N" for the decode
// kernel with N KV splits ("an1.decode" when N is 1). Empty when no kernel supports the problem.
std::string KernelLabel(const cudaDeviceProp& device, const AttentionParams& params);

// Plan(device, params).workspace_bytes: device memory Run needs as workspace for this problem on
// `device` (the decode kernel's split count depends on the number of SMs; the sm90 kernel keeps
// its work queue there); 0 for kernels that need none.
std::size_t WorkspaceBytes(const cudaDeviceProp& device, const AttentionParams& params);

// Validates `params` against the current device, selects the kernel (params.kernel, or the
// dispatcher's choice for kAuto) and launches it on `stream`. `workspace` must hold
// WorkspaceBytes(current device, params) bytes of device memory (may be null when that is 0).
KernelStatus Run(const AttentionParams& params, void* workspace, std::size_t workspace_bytes,
                 cudaStream_t stream);
// Launches what `plan` (Plan for the current device and these params) says, without working it
// out again: kUnsupported for a plan with no kernel, null pointers, q/k/v/o not 16-byte aligned
// (lse not 4-byte aligned) or a short workspace.
KernelStatus Run(const LaunchPlan& plan, const AttentionParams& params, void* workspace,
                 std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace an1::kernels::attention
