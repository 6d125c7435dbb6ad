#include "engine/gpu_staging.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace an1 {
namespace {

constexpr std::size_t kAlignment = 256;  // device sub-allocations start on 256-byte boundaries

std::size_t AlignUp(std::size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

kernels::ElementType ToElementType(DType dtype) {
  using kernels::ElementType;
  switch (dtype) {
    case DType::kFloat16:
      return ElementType::kF16;
    case DType::kBFloat16:
      return ElementType::kBF16;
    case DType::kFloat32:
    case DType::kInt32:  // never reaches a kernel as data: validation refuses int32 data
      return ElementType::kF32;
  }
  return ElementType::kF32;
}

std::size_t AlignDeviceBytes(std::size_t n) { return AlignUp(n); }

namespace {

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

}  // namespace

Status RunStaged(GpuContext& gpu, const ExecutionContext& context,
                 std::initializer_list<const TensorView*> inputs, std::size_t scratch_bytes,
                 std::span<std::byte> output, const ComputeStep& compute, ExecutionTimes* times,
                 std::span<std::byte> extra_output) {
  if (!gpu.healthy()) {
    return UnavailableError("GPU " + gpu.device().ToString() +
                            " is out of service: " + gpu.fault());
  }
  AN1_RETURN_IF_ERROR(gpu.CheckCuda(cudaSetDevice(gpu.index()), "cudaSetDevice"));
  GpuContext::Slot& slot = gpu.slot(context.slot);
  const bool host_output = context.output_device < 0;

  // Host inputs are staged at the offsets they get in device memory (each rounded up to 256
  // bytes), so that one copy uploads them all: a paged decode step's small index tensors
  // (page table, lengths, the plan) are one cudaMemcpyAsync, not one each.
  std::size_t staged_bytes = 0, device_bytes = 0;
  for (const TensorView* in : inputs) {
    if (in->device >= 0) continue;
    staged_bytes += in->data.size();
    device_bytes += AlignUp(in->data.size());
  }
  const std::size_t upload_bytes = device_bytes;  // the staged inputs with their padding
  const std::size_t output_offset = device_bytes;
  if (host_output) device_bytes += AlignUp(output.size());
  const std::size_t extra_offset = device_bytes;
  device_bytes += AlignUp(extra_output.size());
  const std::size_t scratch_offset = device_bytes;
  if (scratch_bytes > SIZE_MAX / 2 - device_bytes) {
    return ResourceExhaustedError("the request needs more device memory than can be addressed");
  }
  device_bytes += scratch_bytes;
  // Downloads land in staging: the host output first, then the extra output.
  const std::size_t download_bytes = (host_output ? output.size() : 0) + extra_output.size();
  const std::size_t staging_bytes = std::max(upload_bytes, download_bytes);
  if (staging_bytes > 0) AN1_RETURN_IF_ERROR(gpu.EnsureStaging(slot, staging_bytes));

  const auto staging_start = std::chrono::steady_clock::now();
  std::size_t offset = 0;
  for (const TensorView* in : inputs) {
    if (in->device >= 0) continue;
    ParallelCopy(gpu.copy_pool(), slot.staging + offset, in->data.data(), in->data.size());
    offset += AlignUp(in->data.size());
  }
  double host_copy_seconds = HostSecondsSince(staging_start);

  if (device_bytes > 0) AN1_RETURN_IF_ERROR(gpu.EnsureDevice(slot, device_bytes));
  auto* base = static_cast<std::byte*>(slot.device);
  DeviceBuffers buffers;
  Status status = gpu.CheckCuda(cudaEventRecord(slot.events[0], slot.stream), "cudaEventRecord");
  if (status.ok() && upload_bytes > 0) {
    status = gpu.CheckCuda(
        cudaMemcpyAsync(base, slot.staging, upload_bytes, cudaMemcpyHostToDevice, slot.stream),
        "upload");
  }
  offset = 0;
  for (const TensorView* in : inputs) {
    if (in->device >= 0) {
      buffers.inputs.push_back(in->data.data());
      continue;
    }
    buffers.inputs.push_back(base + offset);
    offset += AlignUp(in->data.size());
  }
  buffers.output = host_output ? static_cast<void*>(base + output_offset) : output.data();
  if (!extra_output.empty()) buffers.extra_output = base + extra_offset;
  buffers.scratch = base + scratch_offset;
  if (status.ok()) status = gpu.CheckCuda(cudaEventRecord(slot.events[1], slot.stream), "record");
  if (status.ok()) status = compute(slot, buffers);
  if (status.ok()) status = gpu.CheckCuda(cudaEventRecord(slot.events[2], slot.stream), "record");
  if (status.ok() && host_output) {
    status = gpu.CheckCuda(cudaMemcpyAsync(slot.staging, buffers.output, output.size(),
                                           cudaMemcpyDeviceToHost, slot.stream),
                           "download");
  }
  const std::size_t extra_staging = host_output ? output.size() : 0;
  if (status.ok() && !extra_output.empty()) {
    status =
        gpu.CheckCuda(cudaMemcpyAsync(slot.staging + extra_staging, buffers.extra_output,
                                      extra_output.size(), cudaMemcpyDeviceToHost, slot.stream),
                      "download");
  }
  if (status.ok()) status = gpu.CheckCuda(cudaEventRecord(slot.events[3], slot.stream), "record");
  // Always wait: even when another request's fault took the device out of service meanwhile,
  // this request's staging must not be read before its own work is over.
  const Status synced = gpu.CheckCuda(cudaStreamSynchronize(slot.stream), "the request's work");
  if (status.ok()) status = synced;
  if (status.ok() && !gpu.healthy()) {
    status = UnavailableError("GPU " + gpu.device().ToString() +
                              " failed during the request and is out of service");
  }
  if (!status.ok()) return status;

  const auto unstage_start = std::chrono::steady_clock::now();
  if (host_output) ParallelCopy(gpu.copy_pool(), output.data(), slot.staging, output.size());
  if (!extra_output.empty()) {
    std::memcpy(extra_output.data(), slot.staging + extra_staging, extra_output.size());
  }
  host_copy_seconds += HostSecondsSince(unstage_start);
  if (times != nullptr) {
    times->compute_seconds = Elapsed(slot.events[1], slot.events[2]);
    times->copy_seconds = host_copy_seconds + Elapsed(slot.events[0], slot.events[1]) +
                          Elapsed(slot.events[2], slot.events[3]);
    times->copied_bytes = staged_bytes + download_bytes;
  }
  return OkStatus();
}

}  // namespace an1
