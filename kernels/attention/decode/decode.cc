#include <algorithm>
#include <vector>

#include "kernels/attention/common/coverage.h"
#include "kernels/attention/decode/launch.h"

namespace an1::kernels::attention::decode {
namespace {

struct Instance {
  ElementType element;
  int64_t head_dim;
};

constexpr Instance kInstances[] = {
#define AN1_DECODE_INSTANCE(ELEMENT, HEAD_DIM, NAME) {ElementType::ELEMENT, HEAD_DIM},
#include "kernels/attention/decode/instances.inc"
#undef AN1_DECODE_INSTANCE
};

// Blocks of this kernel an SM holds at once, from its shared memory (registers allow more).
int BlocksPerSm(const cudaDeviceProp& device, const AttentionParams& p) {
  const int smem = SharedMemoryBytes(static_cast<int>(p.head_dim), 2) + 1024;  // + reserved
  const int blocks = static_cast<int>(device.sharedMemPerMultiprocessor / smem);
  return std::clamp(blocks, 1, Tiles::kMaxBlocksPerSm);
}

}  // namespace

std::string Supported(const cudaDeviceProp& device, const AttentionParams& p) {
  if (std::string why = CommonCoverage(device, p); !why.empty()) return why;
  if (p.layout != Layout::kBhsd) return "the decode kernel takes the (B, H, S, D) layout";
  if (p.q_len > Tiles::kMaxQueries) {
    return "the decode kernel takes at most " + std::to_string(Tiles::kMaxQueries) +
           " queries per sequence";
  }
  const bool compiled = std::any_of(std::begin(kInstances), std::end(kInstances),
                                    [&](const Instance& i) { return i.head_dim == p.head_dim; });
  if (!compiled) {
    return "the decode kernel takes head_dim 64 or 128, not " + std::to_string(p.head_dim);
  }
  const int smem = SharedMemoryBytes(static_cast<int>(p.head_dim), 2);
  if (static_cast<std::size_t>(smem) > device.sharedMemPerBlockOptin) {
    return "the decode kernel needs " + std::to_string(smem >> 10) +
           " KiB of shared memory per block; this GPU allows " +
           std::to_string(device.sharedMemPerBlockOptin >> 10);
  }
  if (p.kv_len > 0x7fff0000) return "the decode kernel takes at most 2^31 - 2^16 keys";
  return "";
}

Split SplitFor(const cudaDeviceProp& device, const AttentionParams& p) {
  return ChooseSplit(p.batch, p.kv_heads, (p.heads / p.kv_heads) * p.q_len, p.kv_len,
                     device.multiProcessorCount, BlocksPerSm(device, p));
}

std::size_t WorkspaceBytes(const Split& split, const AttentionParams& p) {
  if (split.splits == 1) return 0;
  const int64_t rows = p.batch * p.heads * p.q_len;
  const int64_t floats = PartialStatsFloats(rows, split.splits) + rows * split.splits * p.head_dim;
  return static_cast<std::size_t>(floats) * sizeof(float);
}

KernelStatus Run(const Split& split, const AttentionParams& p, void* workspace,
                 cudaStream_t stream) {
#define AN1_DECODE_INSTANCE(ELEMENT, HEAD_DIM, NAME)             \
  if (p.dtype == ElementType::ELEMENT && p.head_dim == HEAD_DIM) \
    return Launch##NAME(p, split, workspace, stream);
#include "kernels/attention/decode/instances.inc"
#undef AN1_DECODE_INSTANCE
  return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                             std::string("attention decode: no instantiation for ") +
                                 ElementTypeName(p.dtype) + " head_dim " +
                                 std::to_string(p.head_dim));
}

}  // namespace an1::kernels::attention::decode
