// Programmatic dependent launch (Hopper): a second kernel on the same stream is launched while
// the first one still runs, its blocks take the SM room the first leaves free, and they wait in
// WaitForPrimaryGrid until the first kernel has finished and its writes are visible. That hides
// the gap between the two launches (a few microseconds, against a decode step of 20-150 us).
// The CUDA programming guide's "Programmatic Dependent Launch and Synchronization" is the source
// of the semantics; on GPUs before sm_90 both calls are no-ops and the launch is ordinary.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace an1::kernels::attention {

// In the primary kernel: this block no longer holds back the dependent grid's launch. (The
// dependent still waits for the whole primary grid in WaitForPrimaryGrid before reading.)
__device__ __forceinline__ void AllowDependentLaunch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// In the dependent kernel, before its first read of what the primary wrote.
__device__ __forceinline__ void WaitForPrimaryGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Launches `kernel` on `stream` as a programmatic dependent of the work queued before it.
template <typename... Params, typename... Args>
cudaError_t LaunchDependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                            cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace an1::kernels::attention
