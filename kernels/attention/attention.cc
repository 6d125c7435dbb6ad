#include "kernels/attention/attention.h"

#include <array>
#include <cstdint>
#include <mutex>

#include "kernels/attention/decode/launch.h"
#include "kernels/attention/sm80/launch.h"
#include "kernels/attention/sm90/launch.h"
#include "kernels/cuda_check.h"

namespace an1::kernels::attention {
namespace {

// Checks every kernel shares: shapes and pointers. Empty when they hold.
std::string CheckProblem(const AttentionParams& p) {
  if (p.batch < 1 || p.heads < 1 || p.kv_heads < 1 || p.q_len < 1 || p.kv_len < 1 ||
      p.head_dim < 1) {
    return "attention: every dimension must be at least 1";
  }
  if (p.heads % p.kv_heads != 0) return "attention: heads must be a multiple of kv_heads";
  return "";
}

std::string KernelSupported(AttentionKernel kernel, const cudaDeviceProp& device,
                            const AttentionParams& p) {
  switch (kernel) {
    case AttentionKernel::kSm80:
      return sm80::Supported(device, p);
    case AttentionKernel::kSm90:
      return sm90::Supported(device, p);
    case AttentionKernel::kDecode:
      return decode::Supported(device, p);
    case AttentionKernel::kAuto:
      break;
  }
  return "attention: no such kernel";
}

}  // namespace

KernelStatus CurrentDeviceProperties(const cudaDeviceProp** props) {
  constexpr int kMaxDevices = 64;
  static std::array<std::once_flag, kMaxDevices> once;
  static std::array<cudaDeviceProp, kMaxDevices> cache;
  static std::array<cudaError_t, kMaxDevices> error;
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return FromCuda(e, "cudaGetDevice");
  if (device < 0 || device >= kMaxDevices) {
    return KernelStatus::Error(KernelStatus::Kind::kInternal, "attention: device index too large");
  }
  std::call_once(once[device],
                 [&] { error[device] = cudaGetDeviceProperties(&cache[device], device); });
  if (error[device] != cudaSuccess) return FromCuda(error[device], "cudaGetDeviceProperties");
  *props = &cache[device];
  return KernelStatus::Ok();
}

std::string_view KernelName(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::kAuto:
      return "auto";
    case AttentionKernel::kSm80:
      return "sm80";
    case AttentionKernel::kSm90:
      return "sm90";
    case AttentionKernel::kDecode:
      return "decode";
  }
  return "unknown";
}

AttentionKernel SelectKernel(const cudaDeviceProp& device, const AttentionParams& p) {
  if (!CheckProblem(p).empty()) return AttentionKernel::kAuto;
  // By shape: a decode step (few queries, memory-bound) on the decode kernel, prefill on the
  // Hopper kernel, then sm80; any other one when those do not cover the problem.
  constexpr AttentionKernel kDecodeOrder[] = {AttentionKernel::kDecode, AttentionKernel::kSm90,
                                              AttentionKernel::kSm80};
  constexpr AttentionKernel kPrefillOrder[] = {AttentionKernel::kSm90, AttentionKernel::kSm80,
                                               AttentionKernel::kDecode};
  for (AttentionKernel kernel :
       p.q_len <= decode::Tiles::kMaxQueries ? kDecodeOrder : kPrefillOrder) {
    if (KernelSupported(kernel, device, p).empty()) return kernel;
  }
  return AttentionKernel::kAuto;
}

LaunchPlan Plan(const cudaDeviceProp& device, const AttentionParams& p) {
  LaunchPlan plan;
  if (plan.unsupported = CheckProblem(p); !plan.unsupported.empty()) return plan;
  if (p.kernel != AttentionKernel::kAuto) {
    plan.unsupported = KernelSupported(p.kernel, device, p);
    if (!plan.unsupported.empty()) return plan;
    plan.kernel = p.kernel;
  } else {
    plan.kernel = SelectKernel(device, p);
    // None fits: the prefill kernel's reason is the one a caller can act on (dtype, head_dim).
    if (plan.kernel == AttentionKernel::kAuto) {
      plan.unsupported = KernelSupported(AttentionKernel::kSm80, device, p);
      return plan;
    }
  }
  switch (plan.kernel) {
    case AttentionKernel::kSm80:
      plan.label = "an1.fwd.sm80";
      break;
    case AttentionKernel::kSm90:
      plan.label = "an1.fwd.sm90";
      plan.workspace_bytes = sm90::kWorkspaceBytes;
      break;
    case AttentionKernel::kDecode: {
      plan.split = decode::SplitFor(device, p);
      plan.workspace_bytes = decode::WorkspaceBytes(plan.split, p);
      plan.label = plan.split.splits == 1
                       ? "an1.decode"
                       : "an1.decode.splitkv/" + std::to_string(plan.split.splits);
      break;
    }
    case AttentionKernel::kAuto:
      break;
  }
  return plan;
}

std::string Supported(const cudaDeviceProp& device, const AttentionParams& p) {
  return Plan(device, p).unsupported;
}

std::string KernelLabel(const cudaDeviceProp& device, const AttentionParams& p) {
  return Plan(device, p).label;
}

std::size_t WorkspaceBytes(const cudaDeviceProp& device, const AttentionParams& p) {
  return Plan(device, p).workspace_bytes;
}

KernelStatus Run(const AttentionParams& p, void* workspace, std::size_t workspace_bytes,
                 cudaStream_t stream) {
  const cudaDeviceProp* props = nullptr;
  if (KernelStatus read = CurrentDeviceProperties(&props); !read.ok()) return read;
  return Run(Plan(*props, p), p, workspace, workspace_bytes, stream);
}

KernelStatus Run(const LaunchPlan& plan, const AttentionParams& p, void* workspace,
                 std::size_t workspace_bytes, cudaStream_t stream) {
  // Validate first, then dispatch; every path not listed ends in the error branch.
  auto unsupported = [](std::string why) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported, std::move(why));
  };
  if (plan.kernel == AttentionKernel::kAuto) return unsupported(plan.unsupported);
  if (p.q == nullptr || p.k == nullptr || p.v == nullptr || p.o == nullptr) {
    return unsupported("attention: q, k, v and o must be device pointers");
  }
  // Every kernel moves q, k, v and o in 16-byte pieces (cp.async, TMA); a misaligned address
  // would be a device fault that takes the GPU out of service, so it is refused here. Tensors
  // the engine stages are 256-byte aligned; a CUDA IPC tensor is at its region offset.
  auto aligned = [](const void* ptr, std::uintptr_t bytes) {
    return reinterpret_cast<std::uintptr_t>(ptr) % bytes == 0;
  };
  if (!aligned(p.q, 16) || !aligned(p.k, 16) || !aligned(p.v, 16) || !aligned(p.o, 16) ||
      !aligned(p.lse, 4)) {
    return unsupported(
        "attention: the an1 kernels need q, k, v and o at 16-byte aligned addresses (a shared "
        "buffer offset that is a multiple of 16); the baseline takes any");
  }
  if (workspace_bytes < plan.workspace_bytes ||
      (plan.workspace_bytes > 0 && workspace == nullptr)) {
    return unsupported("attention: the workspace is smaller than WorkspaceBytes");
  }
  switch (plan.kernel) {
    case AttentionKernel::kSm80:
      return sm80::Run(p, stream);
    case AttentionKernel::kSm90:
      return sm90::Run(p, workspace, stream);
    case AttentionKernel::kDecode:
      return decode::Run(plan.split, p, workspace, stream);
    case AttentionKernel::kAuto:
      break;
  }
  return KernelStatus::Error(KernelStatus::Kind::kInternal, "attention: no kernel selected");
}

}  // namespace an1::kernels::attention
