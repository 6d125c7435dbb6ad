#include "kernels/attention/decode/paged.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <utility>

#include "kernels/attention/common/tensor_map.h"
#include "kernels/attention/decode/launch.h"
#include "kernels/attention/sm90/launch.h"
#include "kernels/attention/sm90/tiles.h"

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

// Whether sequence `s` runs in the sm80 prefill kernel's paged source (paged.h).
bool PrefillRoute(const PagedProblem& p, const PagedSpan& s) {
  return s.q_len > kPrefillMinQueries && p.causal && p.window_left < 0 && p.window_right < 0 &&
         p.softcap == 0;
}

// Whether the prefill chunks run in the sm90 kernel's paged source: a Hopper GPU, pages it takes,
// its shared memory, and TMA's 32-bit coordinates for q rows and cache slots.
bool PrefillOnSm90(const cudaDeviceProp& device, const PagedProblem& p) {
  return device.major == 9 && sm90::PagedPageSizeSupported(p.page_size) &&
         static_cast<std::size_t>(sm90::SharedMemoryBytes(static_cast<int>(p.head_dim),
                                                          sm90::Tiles::kBlockN, /*paged=*/true)) <=
             device.sharedMemPerBlockOptin &&
         p.total_q < 0x7fffffff && p.num_pages * p.page_size < 0x7fffffff;
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
    if (s.q_len == 0 || PrefillRoute(p, s)) continue;
    units += p.kv_heads * ((group * s.q_len + Tiles::kRows - 1) / Tiles::kRows);
    max_kv_len = std::max(max_kv_len, s.kv_len);
  }
  // The dense rule (tiles.h, ChooseSplit) on the batch's decode blocks and its longest decode
  // sequence; each sequence then has as many splits of tiles_per_split tiles as its own length
  // needs.
  const Split split = ChooseSplit(std::max<int64_t>(units, 1), 1, 1, max_kv_len,
                                  device.multiProcessorCount, PagedBlocksPerSm(device, p));
  plan.tiles_per_split = split.tiles_per_split;
  std::vector<int32_t>& m = plan.metadata;
  std::vector<int32_t> splits_of_sequence(sequences.size(), 0);
  std::vector<std::size_t> prefill_sequences;
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const PagedSpan& s = sequences[b];
    if (s.q_len == 0) continue;
    if (PrefillRoute(p, s)) {
      prefill_sequences.push_back(b);
      continue;
    }
    const int64_t tiles = (s.kv_len + Tiles::kBlockN - 1) / Tiles::kBlockN;
    const int64_t splits =
        std::max<int64_t>(1, (tiles + plan.tiles_per_split - 1) / plan.tiles_per_split);
    splits_of_sequence[b] = static_cast<int32_t>(splits);
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
  plan.sequence_of_row_offset = plan.blocks * 4;
  m.resize(m.size() + static_cast<std::size_t>(p.total_q), 0);
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const PagedSpan& s = sequences[b];
    std::fill_n(m.begin() + plan.sequence_of_row_offset + s.q_start, s.q_len,
                static_cast<int32_t>(b));
  }
  plan.splits_of_sequence_offset = static_cast<int64_t>(m.size());
  m.insert(m.end(), splits_of_sequence.begin(), splits_of_sequence.end());
  // The prefill chunks' blocks ({sequence, head, query block, 0}, 16-byte aligned), the longest
  // KV first so that the heaviest blocks start first.
  m.resize((m.size() + 3) / 4 * 4, 0);
  plan.prefill_work_offset = static_cast<int64_t>(m.size());
  std::stable_sort(
      prefill_sequences.begin(), prefill_sequences.end(),
      [&](std::size_t x, std::size_t y) { return sequences[x].kv_len > sequences[y].kv_len; });
  for (std::size_t b : prefill_sequences) {
    const int64_t query_blocks = (sequences[b].q_len + kPrefillBlockRows - 1) / kPrefillBlockRows;
    for (int64_t qb = query_blocks - 1; qb >= 0; --qb) {  // the last rows see the most keys
      for (int64_t h = 0; h < p.heads; ++h) {
        m.insert(m.end(),
                 {static_cast<int32_t>(b), static_cast<int32_t>(h), static_cast<int32_t>(qb), 0});
      }
    }
  }
  plan.prefill_blocks = (static_cast<int64_t>(m.size()) - plan.prefill_work_offset) / 4;
  if (plan.max_splits > 1) {
    const int64_t rows = p.total_q * p.heads;
    const int64_t floats =
        PartialStatsFloats(rows, plan.max_splits) + rows * plan.max_splits * p.head_dim;
    plan.workspace_bytes = static_cast<std::size_t>(floats) * sizeof(float);
    plan.label = "an1.paged.splitkv/" + std::to_string(plan.max_splits);
  } else {
    plan.label = "an1.paged";
  }
  if (plan.prefill_blocks > 0) {
    static_assert(kPrefillBlockRows == sm90::Tiles::kBlockM);
    plan.prefill_sm90 = PrefillOnSm90(device, p);
    plan.label += plan.prefill_sm90 ? "+sm90" : "+sm80";
    if (plan.prefill_sm90) {  // the work queue after the split partials
      plan.prefill_queue_offset = (plan.workspace_bytes + 255) / 256 * 256;
      plan.workspace_bytes = plan.prefill_queue_offset + 256;
    }
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
  pa.sequence_of_row = buf.metadata + plan.sequence_of_row_offset;
  pa.splits_of_sequence = buf.metadata + plan.splits_of_sequence_offset;
  pa.prefill_work = reinterpret_cast<const int4*>(buf.metadata + plan.prefill_work_offset);
  pa.prefill_blocks = plan.prefill_blocks;
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
  sm90::KernelArgs prefill{};  // PlanPaged sets prefill_sm90 only with prefill blocks
  if (plan.prefill_sm90) {
    if (KernelStatus s = sm90::EncodePagedTensorMaps(
            p.dtype, buf.q, buf.k_cache, buf.v_cache, p.total_q, p.heads, p.kv_heads, p.head_dim,
            p.num_pages * p.page_size, p.page_size, &prefill);
        !s.ok()) {
      return s;
    }
    prefill.lse = buf.lse;
    prefill.tile_counter = reinterpret_cast<unsigned long long*>(static_cast<char*>(buf.workspace) +
                                                                 plan.prefill_queue_offset);
    prefill.scale_log2 = args.scale_log2;
    prefill.heads = static_cast<int>(p.heads);
    prefill.kv_heads = static_cast<int>(p.kv_heads);
    prefill.group = static_cast<int>(p.heads / p.kv_heads);
    prefill.work_tiles = plan.prefill_blocks;
    prefill.paged = {pa.prefill_work, pa.cu_seqlens_q,      pa.kv_lens,
                     pa.page_table,   pa.max_pages_per_seq, pa.page_shift};
    prefill.o = buf.o;
  }
  const sm90::KernelArgs* prefill_sm90 = plan.prefill_sm90 ? &prefill : nullptr;
#define AN1_DECODE_INSTANCE(ELEMENT, HEAD_DIM, NAME)             \
  if (p.dtype == ElementType::ELEMENT && p.head_dim == HEAD_DIM) \
    return LaunchPaged##NAME(args, plan.blocks, p.append, prefill_sm90, stream);
#include "kernels/attention/decode/instances.inc"
#undef AN1_DECODE_INSTANCE
  return KernelStatus::Error(KernelStatus::Kind::kUnsupported,
                             std::string("paged attention: no instantiation for ") +
                                 ElementTypeName(p.dtype) + " head_dim " +
                                 std::to_string(p.head_dim));
}

}  // namespace an1::kernels::attention::decode
