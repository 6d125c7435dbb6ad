#include "engine/gpu_context.h"

#include <spdlog/spdlog.h>

#include "kernels/cuda_check.h"
#include "kernels/fault_injection.h"

namespace an1 {

namespace {

unsigned ScheduleFlag(EngineOptions::GpuWait wait) {
  switch (wait) {
    case EngineOptions::GpuWait::kYield:
      return cudaDeviceScheduleYield;
    case EngineOptions::GpuWait::kBlock:
      return cudaDeviceScheduleBlockingSync;
    case EngineOptions::GpuWait::kSpin:
      break;
  }
  return cudaDeviceScheduleSpin;
}

const char* ScheduleName(unsigned flag) {
  switch (flag & cudaDeviceScheduleMask) {
    case cudaDeviceScheduleSpin:
      return "spin";
    case cudaDeviceScheduleYield:
      return "yield";
    case cudaDeviceScheduleBlockingSync:
      return "block";
    default:
      return "auto";
  }
}

}  // namespace

StatusOr<std::unique_ptr<GpuContext>> GpuContext::Create(int index, int slots,
                                                         EngineOptions::GpuWait wait) {
  std::unique_ptr<GpuContext> gpu(new GpuContext(index));
  const std::string name = DeviceId::Cuda(index).ToString();
  auto fail = [&](cudaError_t e, const char* what) {
    return UnavailableError(name + ": " + what + ": " + cudaGetErrorString(e));
  };
  if (cudaError_t e = cudaSetDevice(index); e != cudaSuccess) return fail(e, "cudaSetDevice");
  // How executors wait for their stream (EngineOptions::gpu_wait; by default polling with
  // yields). Set before the context exists; what the context got is checked below.
  const unsigned schedule = ScheduleFlag(wait);
  cudaSetDeviceFlags(schedule);
  cudaGetLastError();
  if (cudaError_t e = cudaFree(nullptr); e != cudaSuccess) return fail(e, "context creation");
  unsigned flags = 0;
  if (cudaGetDeviceFlags(&flags) == cudaSuccess && (flags & cudaDeviceScheduleMask) != schedule) {
    spdlog::warn(
        "{}: executors wait for the GPU by '{}', not the '{}' asked for (the CUDA "
        "context existed before the flag was set)",
        name, ScheduleName(flags), ScheduleName(schedule));
  } else {
    spdlog::info("{}: executors wait for the GPU by '{}'", name, ScheduleName(schedule));
  }
  cudaGetLastError();
  if (cudaError_t e = cudaGetDeviceProperties(&gpu->properties_, index); e != cudaSuccess) {
    return fail(e, "cudaGetDeviceProperties");
  }
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
  spdlog::error("GPU {} taken out of service after a device fault: {}", device().ToString(),
                reason);
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
      return ResourceExhaustedError("out of GPU memory on " + device().ToString());
    case Kind::kUnsupported:
      return UnimplementedError(status.message);
    case Kind::kDeviceFault:
      MarkFaulty(status.message);
      return UnavailableError("GPU " + device().ToString() + " failed and is out of service");
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
    return ResourceExhaustedError("out of GPU memory on " + device().ToString() + " (" +
                                  std::to_string(bytes >> 20) + " MiB needed)");
  }
  AN1_RETURN_IF_ERROR(CheckCuda(e, "cudaMallocAsync"));
  slot.device_bytes = bytes;
  return OkStatus();
}

}  // namespace an1
