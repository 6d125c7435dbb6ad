#include <algorithm>
#include <vector>

#include "kernels/attention/common/coverage.h"
#include "kernels/attention/sm80/launch.h"
#include "kernels/attention/sm80/tiles.h"

namespace an1::kernels::attention::sm80 {
namespace {

struct Instance {
  ElementType element;
  int64_t head_dim;
  bool causal;
};

constexpr Instance kInstances[] = {
#define AN1_SM80_INSTANCE(ELEMENT, HEAD_DIM, CAUSAL, NAME) {ElementType::ELEMENT, HEAD_DIM, CAUSAL},
#include "kernels/attention/sm80/instances.inc"
#undef AN1_SM80_INSTANCE
};

// "64 or 128": the head dims some instantiation has, for messages.
std::string HeadDims() {
  std::vector<int64_t> dims;
  for (const Instance& i : kInstances) {
    if (std::find(dims.begin(), dims.end(), i.head_dim) == dims.end()) dims.push_back(i.head_dim);
  }
  std::sort(dims.begin(), dims.end());
  std::string text;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    text += (i == 0 ? "" : i + 1 == dims.size() ? " or " : ", ") + std::to_string(dims[i]);
  }
  return text;
}

}  // namespace

std::string Supported(const cudaDeviceProp& device, const AttentionParams& p) {
  if (std::string why = CommonCoverage(device, p); !why.empty()) return why;
  if (p.layout != Layout::kBhsd) return "the sm80 attention kernel takes the (B, H, S, D) layout";
  const bool dim_compiled =
      std::any_of(std::begin(kInstances), std::end(kInstances),
                  [&](const Instance& i) { return i.head_dim == p.head_dim; });
  if (!dim_compiled) {
    return "the an1 attention kernels take head_dim " + HeadDims() + ", not " +
           std::to_string(p.head_dim);
  }
  const int smem = p.causal ? SharedMemoryBytes<true>(static_cast<int>(p.head_dim), 2)
                            : SharedMemoryBytes<false>(static_cast<int>(p.head_dim), 2);
  if (static_cast<std::size_t>(smem) > device.sharedMemPerBlockOptin) {
    return "the sm80 attention kernel needs " + std::to_string(smem >> 10) +
           " KiB of shared memory per block; this GPU allows " +
           std::to_string(device.sharedMemPerBlockOptin >> 10);
  }
  if (p.q_len > 0x7fff0000 || p.kv_len > 0x7fff0000) {
    return "the sm80 attention kernel takes at most 2^31 - 2^16 queries and keys per sequence";
  }
  return "";
}

KernelStatus Run(const AttentionParams& p, cudaStream_t stream) {
#define AN1_SM80_INSTANCE(ELEMENT, HEAD_DIM, CAUSAL, NAME)                             \
  if (p.dtype == ElementType::ELEMENT && p.head_dim == HEAD_DIM && p.causal == CAUSAL) \
    return Launch##NAME(p, stream);
#include "kernels/attention/sm80/instances.inc"
#undef AN1_SM80_INSTANCE
  return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                             std::string("attention sm80: no instantiation for ") +
                                 ElementTypeName(p.dtype) + " head_dim " +
                                 std::to_string(p.head_dim));
}

}  // namespace an1::kernels::attention::sm80
