#include "kernels/attention/decode/paged.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <utility>

#include "kernels/attention/common/tensor_map.h"
#include "kernels/attention/decode/launch.h"

namespace an1::kernels::attention::decode {
namespace {

constexpr int64_t kCompiledHeadDims[] = {64, 128};

bool Aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Blocks of the paged kernel an SM holds at once, from its shared memory.
int PagedBlocksPerSm(const cudaDeviceProp& device, const PagedProblem& p) {
  const bool tma = PagedByTma(std::countr_zero(static_cast<uint64_t>(p.page_size)));
  const int smem = SharedMemoryBytes(static_cast<int>(p.head_dim), 2, tma) + 1024;
  return std::clamp(static_cast<int>(device.sharedMemPerMultiprocessor / smem), 1,
                    Tiles::kMaxBlocksPerSm);
}

}  // namespace

std::string PagedSupported(const cudaDeviceProp& device, const PagedProblem& p) {
  if (p.dtype == ElementType::kF32) return "the paged kernel takes fp16 or bf16, not fp32";
  if (std::find(std::begin(kCompiledHeadDims), std::end(kCompiledHeadDims), p.head_dim) ==
      std::end(kCompiledHeadDims)) {
    return "the paged kernel takes head_dim 64 or 128, not " + std::to_string(p.head_dim);
  }
  if (p.kv_heads < 1 || p.heads % p.kv_heads != 0) return "heads must be a multiple of kv_heads";
  if (p.page_size < 1 || p.page_size > 256 ||
      !std::has_single_bit(static_cast<uint64_t>(p.page_size))) {
    return "page_size must be a power of two from 1 to 256";
  }
  const int smem = SharedMemoryBytes(static_cast<int>(p.head_dim), 2, /*tma=*/false);
  if (static_cast<std::size_t>(smem) > device.sharedMemPerBlockOptin) {
    return "the paged kernel needs " + std::to_string(smem >> 10) +
           " KiB of shared memory per block; this GPU allows " +
           std::to_string(device.sharedMemPerBlockOptin >> 10);
  }
  return "";
}

PagedPlan PlanPaged(const cudaDeviceProp& device, const PagedProblem& p,
                    std::span<const PagedSpan> sequences) {
  PagedPlan plan;
  const int64_t group = p.heads / p.kv_heads;
  int64_t units = 0, max_kv_len = 1;
  for (const PagedSpan& s : sequences) {
    if (s.q_len == 0) continue;
    units += p.kv_heads * ((group * s.q_len + Tiles::kRows - 1) / Tiles::kRows);
    max_kv_len = std::max(max_kv_len, s.kv_len);
  }
  // The dense rule (tiles.h, ChooseSplit) on the batch's blocks and its longest sequence; each
  // sequence then has as many splits of tiles_per_split tiles as its own length needs.
  const Split split = ChooseSplit(std::max<int64_t>(units, 1), 1, 1, max_kv_len,
                                  device.multiProcessorCount, PagedBlocksPerSm(device, p));
  plan.tiles_per_split = split.tiles_per_split;
  std::vector<int32_t>& m = plan.metadata;
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const PagedSpan& s = sequences[b];
    if (s.q_len == 0) continue;
    const int64_t tiles = (s.kv_len + Tiles::kBlockN - 1) / Tiles::kBlockN;
    const int64_t splits =
        std::max<int64_t>(1, (tiles + plan.tiles_per_split - 1) / plan.tiles_per_split);
    plan.max_splits = std::max(plan.max_splits, static_cast<int>(splits));
    const int64_t row_blocks = (group * s.q_len + Tiles::kRows - 1) / Tiles::kRows;
    for (int64_t kvh = 0; kvh < p.kv_heads; ++kvh) {
      for (int64_t sp = 0; sp < splits; ++sp) {
        for (int64_t rb = 0; rb < row_blocks; ++rb) {
          m.insert(m.end(), {static_cast<int32_t>(b), static_cast<int32_t>(kvh),
                             static_cast<int32_t>(rb), static_cast<int32_t>(sp)});
        }
      }
    }
  }
  plan.blocks = static_cast<int64_t>(m.size() / 4);
  m.resize(m.size() + static_cast<std::size_t>(p.total_q), 0);
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const PagedSpan& s = sequences[b];
    std::fill_n(m.begin() + plan.blocks * 4 + s.q_start, s.q_len, static_cast<int32_t>(b));
  }
  if (plan.max_splits > 1) {
    const int64_t rows = p.total_q * p.heads;
    const int64_t floats =
        PartialStatsFloats(rows, plan.max_splits) + rows * plan.max_splits * p.head_dim;
    plan.workspace_bytes = static_cast<std::size_t>(floats) * sizeof(float);
    plan.label = "an1.paged.splitkv/" + std::to_string(plan.max_splits);
  } else {
    plan.label = "an1.paged";
  }
  return plan;
}

KernelStatus RunPaged(const PagedProblem& p, const PagedPlan& plan, const PagedBuffers& buf,
                      cudaStream_t stream) {
  for (const void* ptr :
       {buf.q, static_cast<const void*>(buf.k_cache), static_cast<const void*>(buf.v_cache),
        buf.k_new, buf.v_new, static_cast<const void*>(buf.metadata),
        static_cast<const void*>(buf.o)}) {
    if (!Aligned16(ptr)) {
      return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                                 "paged attention: tensors must be 16-byte aligned");
    }
  }
  KernelArgs args;
  AttentionParams& a = args.params;
  a.dtype = p.dtype;
  a.batch = p.batch;
  a.heads = p.heads;
  a.kv_heads = p.kv_heads;
  a.head_dim = p.head_dim;
  a.causal = p.causal;
  a.scale = p.scale;
  a.q = buf.q;
  a.k = buf.k_cache;
  a.v = buf.v_cache;
  a.o = buf.o;
  a.lse = buf.lse;
  args.scale_log2 = p.scale * 1.4426950408889634f;  // log2(e)
  args.tiles_per_split = plan.tiles_per_split;
  PagedArgs& pa = args.paged;
  pa.page_table = buf.page_table;
  pa.cu_seqlens_q = buf.cu_seqlens_q;
  pa.kv_lens = buf.kv_lens;
  pa.work = reinterpret_cast<const int4*>(buf.metadata);
  pa.sequence_of_row = buf.metadata + plan.blocks * 4;
  pa.k_new = buf.k_new;
  pa.v_new = buf.v_new;
  pa.k_cache = buf.k_cache;
  pa.v_cache = buf.v_cache;
  pa.total_q = p.total_q;
  pa.max_pages_per_seq = static_cast<int>(p.max_pages_per_seq);
  pa.page_shift = std::countr_zero(static_cast<uint64_t>(p.page_size));
  pa.window_left = p.window_left;
  pa.window_right = p.window_right;
  pa.softcap = p.softcap;
  pa.softcap_scale = p.softcap > 0 ? std::abs(p.scale) / p.softcap : 0.0f;
  pa.max_splits = plan.max_splits;
  if (PagedByTma(pa.page_shift)) {  // the caches as (head_dim, kv_heads, slots)
    const int64_t slots = p.num_pages * p.page_size;
    const uint32_t box_rows = static_cast<uint32_t>(std::min<int64_t>(p.page_size, Tiles::kBlockN));
    for (auto [map, base] : {std::pair{&args.k_map, static_cast<const void*>(buf.k_cache)},
                             std::pair{&args.v_map, static_cast<const void*>(buf.v_cache)}}) {
      KernelStatus s = EncodeTiles3d("paged", map, p.dtype, base, {p.head_dim, p.kv_heads, slots},
                                     {p.head_dim * 2, p.kv_heads * p.head_dim * 2},
                                     {kTmaBoxColumns, 1, box_rows}, Tiles::kL2PromotionBytes);
      if (!s.ok()) return s;
    }
  }
  if (plan.max_splits > 1) {
    const int64_t rows = p.total_q * p.heads;
    const int64_t stats = PartialStatsFloats(rows, plan.max_splits);
    args.partial_max = static_cast<float*>(buf.workspace);
    args.partial_sum = args.partial_max + stats / 2;
    args.partial_o = args.partial_max + stats;
  }
#define AN1_DECODE_INSTANCE(ELEMENT, HEAD_DIM, NAME)             \
  if (p.dtype == ElementType::ELEMENT && p.head_dim == HEAD_DIM) \
    return LaunchPaged##NAME(args, plan.blocks, p.append, stream);
#include "kernels/attention/decode/instances.inc"
#undef AN1_DECODE_INSTANCE
  return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                             std::string("paged attention: no instantiation for ") +
                                 ElementTypeName(p.dtype) + " head_dim " +
                                 std::to_string(p.head_dim));
}

}  // namespace an1::kernels::attention::decode
