#include "kernels/attention/attention.h"

#include <array>
#include <mutex>

#include "kernels/attention/sm80/launch.h"
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
    case AttentionKernel::kAuto:
      break;
  }
  return "attention: no such kernel";
}

// The current device's properties, read once per device (a read costs far more than a launch).
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

}  // namespace

std::string_view KernelName(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::kAuto:
      return "auto";
    case AttentionKernel::kSm80:
      return "sm80";
  }
  return "unknown";
}

AttentionKernel SelectKernel(const cudaDeviceProp& device, const AttentionParams& p) {
  if (!CheckProblem(p).empty()) return AttentionKernel::kAuto;
  // Fastest first; today one kernel.
  for (AttentionKernel kernel : kAllKernels) {
    if (KernelSupported(kernel, device, p).empty()) return kernel;
  }
  return AttentionKernel::kAuto;
}

std::string Supported(const cudaDeviceProp& device, const AttentionParams& p) {
  if (std::string why = CheckProblem(p); !why.empty()) return why;
  if (p.kernel != AttentionKernel::kAuto) return KernelSupported(p.kernel, device, p);
  if (SelectKernel(device, p) != AttentionKernel::kAuto) return "";
  // None fits: the first kernel's reason is the one a caller can act on (today the only one).
  return KernelSupported(kAllKernels[0], device, p);
}

std::string KernelLabel(const cudaDeviceProp& device, const AttentionParams& p) {
  if (!Supported(device, p).empty()) return "";
  const AttentionKernel kernel = p.kernel == AttentionKernel::kAuto ? SelectKernel(device, p)
                                                                     : p.kernel;
  switch (kernel) {
    case AttentionKernel::kSm80:
      return "an1.fwd.sm80";
    case AttentionKernel::kAuto:
      break;
  }
  return "";
}

std::size_t WorkspaceBytes(const AttentionParams& /*params*/) { return 0; }  // sm80 needs none

KernelStatus Run(const AttentionParams& p, void* /*workspace*/, std::size_t workspace_bytes,
                 cudaStream_t stream) {
  // Validate first, then dispatch; every path not listed ends in the error branch.
  auto unsupported = [](std::string why) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported, std::move(why));
  };
  if (p.q == nullptr || p.k == nullptr || p.v == nullptr || p.o == nullptr) {
    return unsupported("attention: q, k, v and o must be device pointers");
  }
  if (workspace_bytes < WorkspaceBytes(p)) return unsupported("attention: workspace too small");
  const cudaDeviceProp* props = nullptr;
  if (KernelStatus read = CurrentDeviceProperties(&props); !read.ok()) return read;
  if (std::string why = Supported(*props, p); !why.empty()) return unsupported(why);
  const AttentionKernel kernel =
      p.kernel == AttentionKernel::kAuto ? SelectKernel(*props, p) : p.kernel;
  switch (kernel) {
    case AttentionKernel::kSm80:
      return sm80::Run(p, stream);
    case AttentionKernel::kAuto:
      break;
  }
  return KernelStatus::Error(KernelStatus::Kind::kInternal, "attention: no kernel selected");
}

}  // namespace an1::kernels::attention
