#include <algorithm>
#include <cstdint>

#include "kernels/attention/common/coverage.h"
#include "kernels/attention/sm90/launch.h"
#include "kernels/attention/sm90/tiles.h"

namespace an1::kernels::attention::sm90 {
namespace {

struct Instance {
  ElementType element;
  int64_t head_dim;
  bool causal;
};

constexpr Instance kInstances[] = {
#define AN1_SM90_INSTANCE(ELEMENT, HEAD_DIM, CAUSAL, NAME) {ElementType::ELEMENT, HEAD_DIM, CAUSAL},
#include "kernels/attention/sm90/instances.inc"
#undef AN1_SM90_INSTANCE
};

}  // namespace

std::string Supported(const cudaDeviceProp& device, const AttentionParams& p) {
  if (std::string why = CommonCoverage(device, p); !why.empty()) return why;
  if (p.layout != Layout::kBhsd) return "the sm90 attention kernel takes the (B, H, S, D) layout";
  if (std::none_of(std::begin(kInstances), std::end(kInstances),
                   [&](const Instance& i) { return i.head_dim == p.head_dim; })) {
    return "the sm90 attention kernel takes head_dim 64 or 128, not " + std::to_string(p.head_dim);
  }
  const int head_dim = static_cast<int>(p.head_dim);
  const int smem = SharedMemoryBytes(head_dim, BlockN(head_dim, p.causal, p.kv_len));
  if (static_cast<std::size_t>(smem) > device.sharedMemPerBlockOptin) {
    return "the sm90 attention kernel needs " + std::to_string(smem >> 10) +
           " KiB of shared memory per block; this GPU allows " +
           std::to_string(device.sharedMemPerBlockOptin >> 10);
  }
  // TMA coordinates and the kernel's in-head indices are 32-bit.
  if (p.q_len > 0x7fff0000 || p.kv_len > 0x7fff0000 || p.batch * p.heads > 0x7fffffff) {
    return "the sm90 attention kernel takes at most 2^31 - 2^16 queries and keys per sequence "
           "and 2^31 - 1 (batch x heads)";
  }
  return "";
}

KernelStatus Run(const AttentionParams& p, void* workspace, cudaStream_t stream) {
#define AN1_SM90_INSTANCE(ELEMENT, HEAD_DIM, CAUSAL, NAME)                             \
  if (p.dtype == ElementType::ELEMENT && p.head_dim == HEAD_DIM && p.causal == CAUSAL) \
    return Launch##NAME(p, workspace, stream);
#include "kernels/attention/sm90/instances.inc"
#undef AN1_SM90_INSTANCE
  return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                             std::string("attention sm90: no instantiation for ") +
                                 ElementTypeName(p.dtype) + " head_dim " +
                                 std::to_string(p.head_dim));
}

}  // namespace an1::kernels::attention::sm90
