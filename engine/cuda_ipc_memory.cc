#include "engine/cuda_ipc_memory.h"

#include "kernels/cuda_ipc.h"

namespace an1 {

IpcMemory::~IpcMemory() { kernels::CloseCudaIpcMemory(device_, data_); }

}  // namespace an1
