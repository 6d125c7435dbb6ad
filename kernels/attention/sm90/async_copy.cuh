// The Hopper kernel's data movement and synchronisation (sm_90): mbarriers with transaction
// counts, TMA tile loads and stores (cp.async.bulk.tensor) through tensor maps, named barriers
// and register reallocation between warpgroups. Device code only; thin wrappers over PTX (PTX
// ISA 8.x: "mbarrier", "cp.async.bulk.tensor", "bar.sync", "setmaxnreg").
#pragma once

#include <cuda.h>  // CUtensorMap (the type only: nothing links the driver library)

#include <cstdint>

#include "kernels/attention/common/mma_sync.cuh"  // SmemAddress

namespace an1::kernels::attention::sm90 {

// --- mbarrier: a shared-memory barrier that completes a phase when `count` threads have
// arrived and every byte announced with ArriveExpectBytes has landed.

__device__ __forceinline__ void BarrierInit(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(SmemAddress(bar)), "r"(count));
}

// Makes initialised barriers visible to the async proxy (TMA) before first use.
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// Arrives once and announces `bytes` of TMA traffic that must land before the phase completes.
__device__ __forceinline__ void ArriveExpectBytes(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(SmemAddress(bar)),
               "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void Arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(SmemAddress(bar)) : "memory");
}

// Waits until the phase of parity `phase` has completed. A barrier starts in phase 0, so
// waiting for parity 1 on a fresh barrier returns at once (the "already empty" start of a
// producer).
__device__ __forceinline__ void Wait(uint64_t* bar, uint32_t phase) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n"
      "}\n" ::"r"(SmemAddress(bar)),
      "r"(phase)
      : "memory");
}

// --- TMA: 3-D tiles (head_dim, sequence, batch x heads) between global and shared memory.

__device__ __forceinline__ void PrefetchTensorMap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Loads the box at (c0, c1, c2) into `dst`; its bytes count towards `bar`'s transaction.
// Elements outside the tensor land as zeros (and still count).
__device__ __forceinline__ void TmaLoad3d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0,
                                          int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5}], [%2];\n" ::"r"(SmemAddress(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(SmemAddress(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// Stores the box at (c0, c1, c2) from `src`; elements outside the tensor are not written.
__device__ __forceinline__ void TmaStore3d(const CUtensorMap* map, const void* src, int c0, int c1,
                                           int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
          reinterpret_cast<uint64_t>(map)),
      "r"(SmemAddress(src)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

__device__ __forceinline__ void TmaStoreCommit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}

// Waits until the committed stores have read their shared memory (it may be rewritten).
__device__ __forceinline__ void TmaStoreWaitRead() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}

// Waits until the committed stores are complete (before the block exits).
__device__ __forceinline__ void TmaStoreWaitAll() {
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}

// Orders this thread's ordinary shared-memory writes before later async-proxy (TMA) reads.
__device__ __forceinline__ void FenceAsyncShared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

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
