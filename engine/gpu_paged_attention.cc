// GpuAn1Backend's paged attention (backend.h): the decode kernel's paged source
// (kernels/attention/decode/paged.h). Caches in this GPU's memory (CUDA IPC regions) are read in
// place and the append goes straight into them on the GPU; caches that arrived in host memory
// (inline or system shared memory) get the append on the host first, into the copy the server
// writes back, and are then uploaded with the rest.
#include "engine/gpu_an1_backend.h"
#include "engine/gpu_staging.h"
#include "engine/paged_append.h"
#include "kernels/attention/decode/paged.h"

namespace an1 {
namespace {

namespace paged = kernels::attention::decode;

paged::PagedProblem ToPagedProblem(const ValidatedPagedAttention& problem) {
  const PagedAttentionDims& d = problem.dims;
  paged::PagedProblem p;
  p.dtype = ToElementType(problem.dtype);
  p.batch = d.batch;
  p.total_q = d.total_q;
  p.heads = d.heads;
  p.kv_heads = d.kv_heads;
  p.head_dim = d.head_dim;
  p.num_pages = d.num_pages;
  p.page_size = d.page_size;
  p.max_pages_per_seq = d.max_pages_per_seq;
  p.scale = problem.scale;
  return p;
}

}  // namespace

std::string GpuAn1Backend::UnsupportedPagedAttention(const ValidatedPagedAttention& problem) const {
  return paged::PagedSupported(gpu_->properties(), ToPagedProblem(problem));
}

Status GpuAn1Backend::PagedAttention(const ValidatedPagedAttention& problem,
                                     const std::vector<PagedSequence>& sequences,
                                     const PagedAttentionInputs& in, std::span<std::byte> output,
                                     const ExecutionContext& context, ExecutionTimes* times) {
  paged::PagedProblem p = ToPagedProblem(problem);
  p.causal = in.causal;
  p.window_left = in.window_left;
  p.window_right = in.window_right;
  p.softcap = in.softcap;
  StatusOr<bool> on_gpu = AppendOnGpuOrHost(problem, sequences, in);  // host: appended now
  if (!on_gpu.ok()) return on_gpu.status();
  p.append = *on_gpu;  // on the GPU, ordered before the attention on the same stream

  std::vector<paged::PagedSpan> spans;
  spans.reserve(sequences.size());
  for (const PagedSequence& s : sequences) spans.push_back({s.q_start, s.q_len, s.kv_len});
  paged::PagedPlan plan = paged::PlanPaged(gpu_->properties(), p, spans);
  if (times != nullptr) times->kernel = plan.label;
  const TensorView metadata{DType::kInt32,
                            {static_cast<int64_t>(plan.metadata.size())},
                            std::as_bytes(std::span<const int32_t>(plan.metadata)),
                            -1};
  const TensorView none{};
  const TensorView& k_new = p.append ? *in.k_new : none;  // uploaded only for a GPU append
  const TensorView& v_new = p.append ? *in.v_new : none;
  auto run = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
    paged::PagedBuffers b;
    b.q = buf.inputs[0];
    b.k_cache = const_cast<void*>(buf.inputs[1]);  // the caller's writable region, or our copy
    b.v_cache = const_cast<void*>(buf.inputs[2]);
    b.page_table = static_cast<const int32_t*>(buf.inputs[3]);
    b.cu_seqlens_q = static_cast<const int32_t*>(buf.inputs[4]);
    b.kv_lens = static_cast<const int32_t*>(buf.inputs[5]);
    b.metadata = static_cast<const int32_t*>(buf.inputs[6]);
    if (p.append) {
      b.k_new = buf.inputs[7];
      b.v_new = buf.inputs[8];
    }
    b.o = buf.output;
    b.lse = static_cast<float*>(buf.extra_output);
    b.workspace = buf.scratch;
    return gpu_->Check(paged::RunPaged(p, plan, b, slot.stream));
  };
  return RunStaged(*gpu_, context,
                   {&in.q, &in.k_cache, &in.v_cache, &in.page_table, &in.cu_seqlens_q, &in.kv_lens,
                    &metadata, &k_new, &v_new},
                   plan.workspace_bytes, output, run, times, std::as_writable_bytes(in.lse));
}

}  // namespace an1
