// RunStaged: the shape of every GPU request (CUDA builds only). Host inputs are staged through
// the slot's pinned buffer and uploaded, the compute step runs between CUDA events, a host output
// is downloaded; inputs and outputs already in this GPU's memory (CUDA IPC regions) are used in
// place, with no copy at all. One device allocation of the slot holds the uploaded inputs, a
// device-side output when the caller's is on the host, an optional extra output (always
// downloaded to host memory: attention's log-sum-exp), and scratch.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/gpu_context.h"
#include "kernels/element_type.h"

namespace an1 {

// Device pointers handed to a compute step: the inputs in order, the output, the extra output
// (null when there is none), scratch space.
struct DeviceBuffers {
  std::vector<const void*> inputs;
  void* output = nullptr;
  void* extra_output = nullptr;
  void* scratch = nullptr;
};

using ComputeStep = std::function<Status(GpuContext::Slot&, const DeviceBuffers&)>;

// Runs `compute` on the executor's slot with `inputs` on the device and `scratch_bytes` of
// scratch; fills `times` (compute between events, copies, bytes moved). A non-empty
// `extra_output` (host memory) gets a device buffer of its size, which the compute step writes
// and which is downloaded into it with the output. Errors: UNAVAILABLE when the GPU is (or goes)
// out of service, RESOURCE_EXHAUSTED when memory runs out, the compute step's error otherwise.
Status RunStaged(GpuContext& gpu, const ExecutionContext& context,
                 std::initializer_list<const TensorView*> inputs, std::size_t scratch_bytes,
                 std::span<std::byte> output, const ComputeStep& compute, ExecutionTimes* times,
                 std::span<std::byte> extra_output = {});

// The kernels' element type of a dtype.
kernels::ElementType ToElementType(DType dtype);

// Rounds a device sub-allocation size up to 256 bytes.
std::size_t AlignDeviceBytes(std::size_t bytes);

}  // namespace an1
