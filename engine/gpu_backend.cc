#include "engine/gpu_backend.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <functional>

#include "kernels/cuda_check.h"
#include "kernels/fault_injection.h"
#include "kernels/flash_attention.h"
#include "kernels/masked_softmax.h"

namespace an1 {
namespace {

using kernels::AlgoPolicy;
using kernels::ElementType;
using kernels::GemmProblem;

constexpr std::size_t kAlignment = 256;  // device sub-allocations start on 256-byte boundaries

std::size_t AlignUp(std::size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

ElementType ToElementType(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return ElementType::kF16;
    case DType::kBFloat16:
      return ElementType::kBF16;
    case DType::kFloat32:
      return ElementType::kF32;
  }
  return ElementType::kF32;
}

double Elapsed(cudaEvent_t from, cudaEvent_t to) {
  float ms = 0;
  return cudaEventElapsedTime(&ms, from, to) == cudaSuccess ? ms * 1e-3 : 0.0;
}

double HostSecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// memcpy in 8 MiB pieces spread over the copy pool (and the calling thread).
void ParallelCopy(ThreadPool& pool, std::byte* dst, const std::byte* src, std::size_t bytes) {
  constexpr std::size_t kPiece = std::size_t{8} << 20;
  const int64_t pieces = static_cast<int64_t>((bytes + kPiece - 1) / kPiece);
  (void)pool.ParallelFor(pieces, [&](int64_t i) {
    const std::size_t offset = static_cast<std::size_t>(i) * kPiece;
    std::memcpy(dst + offset, src + offset, std::min(kPiece, bytes - offset));
  });
}

// Device pointers handed to a compute step: the inputs in order, the output, scratch space.
struct DeviceBuffers {
  std::vector<const void*> inputs;
  void* output = nullptr;
  void* scratch = nullptr;
};

// The shape of every GPU request: stage and upload the host inputs, compute between events,
// download a host output. Inputs and outputs already in this GPU's memory (CUDA IPC regions)
// are used in place: no staging, no copy. One device allocation holds the uploaded inputs, a
// device-side output when the caller's is on the host, and scratch.
Status RunStaged(GpuContext& gpu, const ExecutionContext& context,
                 std::initializer_list<const TensorView*> inputs, std::size_t scratch_bytes,
                 std::span<std::byte> output,
                 const std::function<Status(GpuContext::Slot&, const DeviceBuffers&)>& compute,
                 ExecutionTimes* times) {
  if (!gpu.healthy()) {
    return UnavailableError("GPU cuda:" + std::to_string(gpu.index()) +
                            " is out of service: " + gpu.fault());
  }
  AN1_RETURN_IF_ERROR(gpu.CheckCuda(cudaSetDevice(gpu.index()), "cudaSetDevice"));
  GpuContext::Slot& slot = gpu.slot(context.slot);
  const bool host_output = context.output_device < 0;

  std::size_t staged_bytes = 0, device_bytes = 0;
  for (const TensorView* in : inputs) {
    if (in->device >= 0) continue;
    staged_bytes += in->data.size();
    device_bytes += AlignUp(in->data.size());
  }
  const std::size_t output_offset = device_bytes;
  if (host_output) device_bytes += AlignUp(output.size());
  const std::size_t scratch_offset = device_bytes;
  if (scratch_bytes > SIZE_MAX / 2 - device_bytes) {
    return ResourceExhaustedError("the request needs more device memory than can be addressed");
  }
  device_bytes += scratch_bytes;
  const std::size_t staging_bytes = std::max(staged_bytes, host_output ? output.size() : 0);
  if (staging_bytes > 0) AN1_RETURN_IF_ERROR(gpu.EnsureStaging(slot, staging_bytes));

  const auto staging_start = std::chrono::steady_clock::now();
  std::size_t offset = 0;
  for (const TensorView* in : inputs) {
    if (in->device >= 0) continue;
    ParallelCopy(gpu.copy_pool(), slot.staging + offset, in->data.data(), in->data.size());
    offset += in->data.size();
  }
  double host_copy_seconds = HostSecondsSince(staging_start);

  if (device_bytes > 0) AN1_RETURN_IF_ERROR(gpu.EnsureDevice(slot, device_bytes));
  auto* base = static_cast<std::byte*>(slot.device);
  DeviceBuffers buffers;
  Status status = gpu.CheckCuda(cudaEventRecord(slot.events[0], slot.stream), "cudaEventRecord");
  std::size_t device_offset = 0;
  offset = 0;
  for (const TensorView* in : inputs) {
    if (in->device >= 0) {
      buffers.inputs.push_back(in->data.data());
      continue;
    }
    if (status.ok()) {
      status = gpu.CheckCuda(cudaMemcpyAsync(base + device_offset, slot.staging + offset,
                                             in->data.size(), cudaMemcpyHostToDevice, slot.stream),
                             "upload");
    }
    buffers.inputs.push_back(base + device_offset);
    device_offset += AlignUp(in->data.size());
    offset += in->data.size();
  }
  buffers.output = host_output ? static_cast<void*>(base + output_offset) : output.data();
  buffers.scratch = base + scratch_offset;
  if (status.ok()) status = gpu.CheckCuda(cudaEventRecord(slot.events[1], slot.stream), "record");
  if (status.ok()) status = compute(slot, buffers);
  if (status.ok()) status = gpu.CheckCuda(cudaEventRecord(slot.events[2], slot.stream), "record");
  if (status.ok() && host_output) {
    status = gpu.CheckCuda(cudaMemcpyAsync(slot.staging, buffers.output, output.size(),
                                           cudaMemcpyDeviceToHost, slot.stream),
                           "download");
  }
  if (status.ok()) status = gpu.CheckCuda(cudaEventRecord(slot.events[3], slot.stream), "record");
  // Always wait: even when another request's fault took the device out of service meanwhile,
  // this request's staging must not be read before its own work is over.
  const Status synced = gpu.CheckCuda(cudaStreamSynchronize(slot.stream), "the request's work");
  if (status.ok()) status = synced;
  if (status.ok() && !gpu.healthy()) {
    status = UnavailableError("GPU cuda:" + std::to_string(gpu.index()) +
                              " failed during the request and is out of service");
  }
  if (!status.ok()) return status;

  if (host_output) {
    const auto unstage_start = std::chrono::steady_clock::now();
    ParallelCopy(gpu.copy_pool(), output.data(), slot.staging, output.size());
    host_copy_seconds += HostSecondsSince(unstage_start);
  }
  if (times != nullptr) {
    times->compute_seconds = Elapsed(slot.events[1], slot.events[2]);
    times->copy_seconds = host_copy_seconds + Elapsed(slot.events[0], slot.events[1]) +
                          Elapsed(slot.events[2], slot.events[3]);
    times->copied_bytes = staged_bytes + (host_output ? output.size() : 0);
  }
  return OkStatus();
}

}  // namespace

// ---- GpuContext ----

StatusOr<std::unique_ptr<GpuContext>> GpuContext::Create(int index, int slots) {
  std::unique_ptr<GpuContext> gpu(new GpuContext(index));
  const std::string name = "cuda:" + std::to_string(index);
  auto fail = [&](cudaError_t e, const char* what) {
    return UnavailableError(name + ": " + what + ": " + cudaGetErrorString(e));
  };
  if (cudaError_t e = cudaSetDevice(index); e != cudaSuccess) return fail(e, "cudaSetDevice");
  // Executors wait for their stream by spinning: a yielding or blocking wait adds tens of
  // microseconds to every request. (Only possible before the context exists; ignored after.)
  cudaSetDeviceFlags(cudaDeviceScheduleSpin);
  cudaGetLastError();
  if (cudaError_t e = cudaFree(nullptr); e != cudaSuccess) return fail(e, "context creation");
  // Keep freed memory in the pool between requests instead of returning it to the driver.
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, index) == cudaSuccess) {
    uint64_t keep = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  gpu->slots_.resize(slots);
  for (Slot& slot : gpu->slots_) {
    if (cudaError_t e = cudaStreamCreateWithFlags(&slot.stream, cudaStreamNonBlocking);
        e != cudaSuccess) {
      return fail(e, "cudaStreamCreate");
    }
    if (cudaError_t e = cudaMalloc(&slot.workspace, kernels::kGemmWorkspaceBytes);
        e != cudaSuccess) {
      return fail(e, "workspace allocation");
    }
    for (cudaEvent_t& event : slot.events) {
      if (cudaError_t e = cudaEventCreate(&event); e != cudaSuccess)
        return fail(e, "cudaEventCreate");
    }
  }
  kernels::KernelStatus gemm = kernels::GemmRunner::Create(&gpu->gemm_);
  if (!gemm.ok()) return UnimplementedError(name + ": " + gemm.message);
  return gpu;
}

GpuContext::~GpuContext() {
  cudaSetDevice(index_);
  gemm_.reset();
  for (Slot& slot : slots_) {
    if (slot.stream) cudaStreamSynchronize(slot.stream);
    for (cudaEvent_t event : slot.events) {
      if (event) cudaEventDestroy(event);
    }
    if (slot.workspace) cudaFree(slot.workspace);
    if (slot.device) cudaFree(slot.device);
    if (slot.staging) cudaFreeHost(slot.staging);
    if (slot.stream) cudaStreamDestroy(slot.stream);
  }
}

std::string GpuContext::fault() const {
  std::lock_guard lock(fault_mutex_);
  return fault_;
}

void GpuContext::MarkFaulty(const std::string& reason) {
  {
    std::lock_guard lock(fault_mutex_);
    if (!fault_.empty()) return;
    fault_ = reason;
  }
  healthy_.store(false);
  spdlog::error("GPU cuda:{} taken out of service after a device fault: {}", index_, reason);
}

void GpuContext::InjectFaultForTesting() {
  cudaSetDevice(index_);
  kernels::LaunchFaultingKernelForTesting(slots_[0].stream);
  (void)CheckCuda(cudaStreamSynchronize(slots_[0].stream), "injected fault");
}

Status GpuContext::Check(const kernels::KernelStatus& status) {
  using Kind = kernels::KernelStatus::Kind;
  switch (status.kind) {
    case Kind::kOk:
      return OkStatus();
    case Kind::kOutOfMemory:
      return ResourceExhaustedError("out of GPU memory on cuda:" + std::to_string(index_));
    case Kind::kUnsupported:
      return UnimplementedError(status.message);
    case Kind::kDeviceFault:
      MarkFaulty(status.message);
      return UnavailableError("GPU cuda:" + std::to_string(index_) +
                              " failed and is out of service");
    case Kind::kInternal:
      break;
  }
  return InternalError(status.message);
}

Status GpuContext::CheckCuda(cudaError_t error, const char* what) {
  return Check(kernels::FromCuda(error, what));
}

Status GpuContext::EnsureStaging(Slot& slot, std::size_t bytes) {
  if (slot.staging_bytes >= bytes) return OkStatus();
  if (slot.staging) cudaFreeHost(slot.staging);
  slot.staging = nullptr;
  slot.staging_bytes = 0;
  void* host = nullptr;
  if (cudaHostAlloc(&host, bytes, cudaHostAllocDefault) != cudaSuccess) {
    cudaGetLastError();
    return ResourceExhaustedError("cannot pin " + std::to_string(bytes) + " bytes of host memory");
  }
  slot.staging = static_cast<std::byte*>(host);
  slot.staging_bytes = bytes;
  return OkStatus();
}

Status GpuContext::EnsureDevice(Slot& slot, std::size_t bytes) {
  if (slot.device_bytes >= bytes) return OkStatus();
  if (slot.device != nullptr) cudaFreeAsync(slot.device, slot.stream);
  slot.device = nullptr;
  slot.device_bytes = 0;
  cudaError_t e = cudaMallocAsync(&slot.device, bytes, slot.stream);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, index_) == cudaSuccess) {
      cudaStreamSynchronize(slot.stream);
      cudaMemPoolTrimTo(pool, 0);  // give back what the pool keeps cached, then retry
    }
    e = cudaMallocAsync(&slot.device, bytes, slot.stream);
  }
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    slot.device = nullptr;
    return ResourceExhaustedError("out of GPU memory on cuda:" + std::to_string(index_) + " (" +
                                  std::to_string(bytes >> 20) + " MiB needed)");
  }
  AN1_RETURN_IF_ERROR(CheckCuda(e, "cudaMallocAsync"));
  slot.device_bytes = bytes;
  return OkStatus();
}

// ---- GpuBackend ----

std::string GpuBackend::Unsupported(OpKind /*op*/) const { return ""; }

std::string GpuBackend::UnsupportedAttention(const ValidatedAttention& problem) const {
  if (flavor_ != Flavor::kAn1) return "";
  return kernels::FlashAttentionUnsupported(ToElementType(problem.dtype), problem.dims.head_dim);
}

Status GpuBackend::Attention(const ValidatedAttention& problem, const AttentionInputs& inputs,
                             std::span<std::byte> output, const ExecutionContext& context,
                             ExecutionTimes* times) {
  if (std::string why = UnsupportedAttention(problem); !why.empty()) {
    return UnimplementedError(why);
  }
  const AttentionDims& d = problem.dims;
  if (flavor_ == Flavor::kAn1) {  // the fused kernel: no scores in memory, no scratch
    auto fused = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
      kernels::FlashAttentionParams params;
      params.q = buf.inputs[0];
      params.k = buf.inputs[1];
      params.v = buf.inputs[2];
      params.o = buf.output;
      params.batch = d.batch;
      params.heads = d.heads;
      params.kv_heads = d.kv_heads;
      params.q_len = d.q_len;
      params.kv_len = d.kv_len;
      params.scale_log2 = problem.scale * 1.4426950408889634f;
      return context_->Check(kernels::LaunchFlashAttention(params, ToElementType(problem.dtype),
                                                           d.head_dim, inputs.causal, slot.stream));
    };
    return RunStaged(*context_, context, {&inputs.q, &inputs.k, &inputs.v}, 0, output, fused,
                     times);
  }
  const int64_t group = d.heads / d.kv_heads;
  const std::size_t elem = DTypeSize(problem.dtype);
  uint64_t score_elements = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(d.batch * d.heads * d.q_len),
                             static_cast<uint64_t>(d.kv_len), &score_elements) ||
      score_elements > (uint64_t{1} << 40)) {
    return ResourceExhaustedError("the baseline's score matrix would not fit in GPU memory");
  }
  if (d.batch * d.kv_heads > INT32_MAX) {
    return UnimplementedError("more than 2^31 - 1 (batch x kv_heads) matrices in one call");
  }
  const std::size_t scores_bytes = AlignUp(score_elements * 4);
  const std::size_t probs_bytes = score_elements * elem;
  const ElementType type = ToElementType(problem.dtype);

  auto compute = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
    auto* scores = static_cast<float*>(buf.scratch);
    void* probs = static_cast<std::byte*>(buf.scratch) + scores_bytes;
    // Q is viewed per k/v head as (group * Sq) x D rows, so GQA is a plain strided batch over
    // B * Hkv. Row-major S = Q K^T is column-major S^T = K Q^T: A = K (transposed), B = Q.
    GemmProblem qk;
    qk.transpose_a = true;
    qk.m = d.kv_len;
    qk.n = group * d.q_len;
    qk.k = d.head_dim;
    qk.lda = d.head_dim;
    qk.ldb = d.head_dim;
    qk.ldc = d.kv_len;
    qk.stride_a = d.kv_len * d.head_dim;
    qk.stride_b = group * d.q_len * d.head_dim;
    qk.stride_c = group * d.q_len * d.kv_len;
    qk.batch = static_cast<int32_t>(d.batch * d.kv_heads);
    qk.ab_type = type;
    qk.c_type = ElementType::kF32;
    AN1_RETURN_IF_ERROR(context_->Check(context_->gemm().Run(qk, buf.inputs[1], buf.inputs[0],
                                                             scores, AlgoPolicy::kFirstHeuristic,
                                                             slot.workspace, slot.stream)));

    kernels::MaskedSoftmaxParams softmax;
    softmax.scores = scores;
    softmax.probs = probs;
    softmax.probs_type = type;
    softmax.rows = d.batch * d.heads * d.q_len;
    softmax.cols = d.kv_len;
    softmax.q_len = d.q_len;
    softmax.causal = inputs.causal;
    softmax.scale = problem.scale;
    AN1_RETURN_IF_ERROR(context_->Check(kernels::LaunchMaskedSoftmax(softmax, slot.stream)));

    // Row-major O = P V is column-major O^T = V^T P^T: A = V, B = P, both as stored.
    GemmProblem pv;
    pv.m = d.head_dim;
    pv.n = group * d.q_len;
    pv.k = d.kv_len;
    pv.lda = d.head_dim;
    pv.ldb = d.kv_len;
    pv.ldc = d.head_dim;
    pv.stride_a = d.kv_len * d.head_dim;
    pv.stride_b = group * d.q_len * d.kv_len;
    pv.stride_c = group * d.q_len * d.head_dim;
    pv.batch = qk.batch;
    pv.ab_type = type;
    pv.c_type = type;
    return context_->Check(context_->gemm().Run(pv, buf.inputs[2], probs, buf.output,
                                                AlgoPolicy::kFirstHeuristic, slot.workspace,
                                                slot.stream));
  };
  return RunStaged(*context_, context, {&inputs.q, &inputs.k, &inputs.v},
                   scores_bytes + probs_bytes, output, compute, times);
}

Status GpuBackend::Matmul(const ValidatedMatmul& problem, const TensorView& a, const TensorView& b,
                          std::span<std::byte> output, const ExecutionContext& context,
                          ExecutionTimes* times) {
  const MatmulDims& d = problem.dims;
  const ElementType type = ToElementType(problem.dtype);
  const std::size_t elem = DTypeSize(problem.dtype);
  const AlgoPolicy policy =
      flavor_ == Flavor::kAn1 ? AlgoPolicy::kTunedFastest : AlgoPolicy::kFirstHeuristic;
  // The last batch dimension becomes one strided-batched call (stride 0 where it broadcasts);
  // the dimensions before it, if any, are a loop of such calls.
  const int64_t inner = d.batch.empty() ? 1 : d.batch.back();
  const int64_t outer = d.batch_count / inner;
  const bool a_steps = !d.a_batch.empty() && d.a_batch.back() != 1;
  const bool b_steps = !d.b_batch.empty() && d.b_batch.back() != 1;
  if (inner > INT32_MAX) {
    return UnimplementedError("more than 2^31 - 1 matrices in the last batch dimension");
  }

  auto compute = [&](GpuContext::Slot& slot, const DeviceBuffers& buf) -> Status {
    // Row-major C = A B is column-major C^T = B^T A^T: the operands swap places.
    GemmProblem g;
    g.m = d.n;
    g.n = d.m;
    g.k = d.k;
    g.lda = d.n;
    g.ldb = d.k;
    g.ldc = d.n;
    g.stride_a = b_steps ? d.k * d.n : 0;
    g.stride_b = a_steps ? d.m * d.k : 0;
    g.stride_c = d.m * d.n;
    g.batch = static_cast<int32_t>(inner);
    g.ab_type = type;
    g.c_type = type;
    g.allow_tf32 = problem.allow_tf32;
    for (int64_t o = 0; o < outer; ++o) {
      int64_t a_index = 0, b_index = 0;
      d.OperandBatches(o * inner, &a_index, &b_index);
      const auto* a_ptr = static_cast<const std::byte*>(buf.inputs[0]) + a_index * d.m * d.k * elem;
      const auto* b_ptr = static_cast<const std::byte*>(buf.inputs[1]) + b_index * d.k * d.n * elem;
      auto* c_ptr = static_cast<std::byte*>(buf.output) + o * inner * d.m * d.n * elem;
      AN1_RETURN_IF_ERROR(context_->Check(
          context_->gemm().Run(g, b_ptr, a_ptr, c_ptr, policy, slot.workspace, slot.stream)));
    }
    return OkStatus();
  };
  return RunStaged(*context_, context, {&a, &b}, 0, output, compute, times);
}

}  // namespace an1
