#include "kernels/attention/attention.h"

#include <array>
#include <mutex>

#include "kernels/attention/decode/launch.h"
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
    case AttentionKernel::kDecode:
      return decode::Supported(device, p);
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
    case AttentionKernel::kDecode:
      return "decode";
  }
  return "unknown";
}

AttentionKernel SelectKernel(const cudaDeviceProp& device, const AttentionParams& p) {
  if (!CheckProblem(p).empty()) return AttentionKernel::kAuto;
  // By shape: a decode step (few queries, memory-bound) on the decode kernel, prefill on sm80;
  // either one when the other does not cover the problem.
  const AttentionKernel order[] = {
      p.q_len <= decode::Tiles::kMaxQueries ? AttentionKernel::kDecode : AttentionKernel::kSm80,
      p.q_len <= decode::Tiles::kMaxQueries ? AttentionKernel::kSm80 : AttentionKernel::kDecode};
  for (AttentionKernel kernel : order) {
    if (KernelSupported(kernel, device, p).empty()) return kernel;
  }
  return AttentionKernel::kAuto;
}

std::string Supported(const cudaDeviceProp& device, const AttentionParams& p) {
  if (std::string why = CheckProblem(p); !why.empty()) return why;
  if (p.kernel != AttentionKernel::kAuto) return KernelSupported(p.kernel, device, p);
  if (SelectKernel(device, p) != AttentionKernel::kAuto) return "";
  // None fits: the prefill kernel's reason is the one a caller can act on (dtype, head_dim).
  return KernelSupported(AttentionKernel::kSm80, device, p);
}

std::string KernelLabel(const cudaDeviceProp& device, const AttentionParams& p) {
  if (!Supported(device, p).empty()) return "";
  const AttentionKernel kernel =
      p.kernel == AttentionKernel::kAuto ? SelectKernel(device, p) : p.kernel;
  switch (kernel) {
    case AttentionKernel::kSm80:
      return "an1.fwd.sm80";
    case AttentionKernel::kDecode: {
      const int splits = decode::SplitFor(device, p).splits;
      return splits == 1 ? "an1.decode" : "an1.decode.splitkv/" + std::to_string(splits);
    }
    case AttentionKernel::kAuto:
      break;
  }
  return "";
}

std::size_t WorkspaceBytes(const cudaDeviceProp& device, const AttentionParams& p) {
  if (!Supported(device, p).empty()) return 0;
  const AttentionKernel kernel =
      p.kernel == AttentionKernel::kAuto ? SelectKernel(device, p) : p.kernel;
  switch (kernel) {
    case AttentionKernel::kDecode:
      return decode::WorkspaceBytes(device, p);
    case AttentionKernel::kSm80:  // needs none
    case AttentionKernel::kAuto:
      break;
  }
  return 0;
}

KernelStatus Run(const AttentionParams& p, void* workspace, std::size_t workspace_bytes,
                 cudaStream_t stream) {
  // Validate first, then dispatch; every path not listed ends in the error branch.
  auto unsupported = [](std::string why) {
    return KernelStatus::Error(KernelStatus::Kind::kUnsupported, std::move(why));
  };
  if (p.q == nullptr || p.k == nullptr || p.v == nullptr || p.o == nullptr) {
    return unsupported("attention: q, k, v and o must be device pointers");
  }
  const cudaDeviceProp* props = nullptr;
  if (KernelStatus read = CurrentDeviceProperties(&props); !read.ok()) return read;
  if (workspace_bytes < WorkspaceBytes(*props, p) ||
      (workspace_bytes > 0 && workspace == nullptr)) {
    return unsupported("attention: the workspace is smaller than WorkspaceBytes");
  }
  if (std::string why = Supported(*props, p); !why.empty()) return unsupported(why);
  const AttentionKernel kernel =
      p.kernel == AttentionKernel::kAuto ? SelectKernel(*props, p) : p.kernel;
  switch (kernel) {
    case AttentionKernel::kSm80:
      return sm80::Run(p, stream);
    case AttentionKernel::kDecode:
      return decode::Run(*props, p, workspace, workspace_bytes, stream);
    case AttentionKernel::kAuto:
      break;
  }
  return KernelStatus::Error(KernelStatus::Kind::kInternal, "attention: no kernel selected");
}

}  // namespace an1::kernels::attention
