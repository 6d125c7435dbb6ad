// The Hopper kernel's synchronisation beyond the family's asynchronous copies (common/tma.cuh:
// mbarriers, TMA): named barriers, register reallocation between warpgroups and wgmma
// shared-memory descriptors. Device code only; thin wrappers over PTX (PTX ISA 8.x: "bar.sync",
// "setmaxnreg", "Matrix Descriptor Format").
#pragma once

#include <cstdint>

#include "kernels/attention/common/tma.cuh"  // mbarriers and TMA; SmemAddress

namespace an1::kernels::attention::sm90 {

// --- Named barriers (ids 1..15; 0 is __syncthreads) among `threads` threads of the block.
__device__ __forceinline__ void NamedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// --- Register reallocation between warpgroups (sm_90a); every thread of a warpgroup runs it.
template <int kRegisters>
__device__ __forceinline__ void IncreaseRegisters() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void DecreaseRegisters() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

// --- wgmma shared-memory matrix descriptors for tiles stored with the 128-byte swizzle (the
// layout TMA writes with CU_TENSOR_MAP_SWIZZLE_128B): rows of 128 bytes (64 16-bit elements),
// 8-row groups of 1024 bytes. Fields (PTX ISA, "Matrix Descriptor Format"): start address,
// leading- and stride-dimension byte offsets, all in 16-byte units; bits 62-63 = 1: 128B swizzle.
__device__ __forceinline__ uint64_t Descriptor(uint32_t address, uint32_t leading_bytes,
                                               uint32_t stride_bytes) {
  return uint64_t{(address & 0x3ffff) >> 4} | uint64_t{(leading_bytes >> 4) & 0x3fff} << 16 |
         uint64_t{(stride_bytes >> 4) & 0x3fff} << 32 | uint64_t{1} << 62;
}

// K-major operand (rows along M or N, 16 elements of K per wgmma inside one 128-byte row): the
// leading offset is unused; 8-row groups are 1024 bytes apart.
__device__ __forceinline__ uint64_t KMajorDescriptor(uint32_t address) {
  return Descriptor(address, 16, 1024);
}

// MN-major B (N contiguous, e.g. V with head_dim along N): 64-element column chunks of N are
// `chunk_bytes` apart (one TMA box each), 8-row groups of K 1024 bytes apart.
__device__ __forceinline__ uint64_t MnMajorDescriptor(uint32_t address, uint32_t chunk_bytes) {
  return Descriptor(address, chunk_bytes, 1024);
}

}  // namespace an1::kernels::attention::sm90
