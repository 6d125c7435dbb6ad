// The append step of paged attention on the host: k_new and v_new into the caches' writable
// host bytes (PagedAttentionInputs::k_cache_writable, v_cache_writable) at their sequences' last
// q_len positions, through the page table; each range written is recorded in inputs.appended
// when set. The CPU baseline appends this way, and so does a GPU backend whose caches arrived in
// host memory (then uploaded with the new rows in place). Indices must have passed
// ValidatePagedIndices.
#pragma once

#include <vector>

#include "engine/paged_validation.h"
#include "engine/status.h"

namespace an1 {

void AppendOnHost(const ValidatedPagedAttention& problem,
                  const std::vector<PagedSequence>& sequences, const PagedAttentionInputs& inputs);

// Where a GPU backend's append runs: true when the caches are in GPU memory (CUDA IPC regions)
// and the backend must append there, before its reads, on its stream; false when there is no
// append, or when the caches are in host memory and the append was just done here (AppendOnHost,
// into the copies the backend then uploads). INVALID_ARGUMENT when one cache is in GPU memory and
// the other is not, or when k_new/v_new are in GPU memory but the caches are not; INTERNAL when
// caches in GPU memory came without their writable bytes.
StatusOr<bool> AppendOnGpuOrHost(const ValidatedPagedAttention& problem,
                                 const std::vector<PagedSequence>& sequences,
                                 const PagedAttentionInputs& inputs);

}  // namespace an1
