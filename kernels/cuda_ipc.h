// CUDA IPC memory of another process, opened from its cudaIpcMemHandle_t bytes.
// Without CUDA in the build both functions report kUnsupported / do nothing. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_status.h"

namespace an1::kernels {

inline constexpr std::size_t kCudaIpcHandleBytes = 64;  // sizeof(cudaIpcMemHandle_t)

// Opens `handle` (kCudaIpcHandleBytes raw bytes) on `device`. On success *pointer is the
// exported allocation's start and *available_bytes its size. Errors: kUnsupported without CUDA,
// kInternal when the handle cannot be opened (bad bytes, another GPU, process gone).
KernelStatus OpenCudaIpcMemory(int device, const void* handle, void** pointer,
                               uint64_t* available_bytes);
void CloseCudaIpcMemory(int device, void* pointer);

}  // namespace an1::kernels
