// The append step of paged attention on the host: k_new and v_new into the caches' writable
// host bytes (PagedAttentionInputs::k_cache_writable, v_cache_writable) at their sequences' last
// q_len positions, through the page table; each range written is recorded in inputs.appended
// when set. The CPU baseline appends this way, and so does a GPU backend whose caches arrived in
// host memory (then uploaded with the new rows in place). Indices must have passed
// ValidatePagedIndices.
#pragma once

#include <vector>

#include "engine/paged_validation.h"

namespace an1 {

void AppendOnHost(const ValidatedPagedAttention& problem,
                  const std::vector<PagedSequence>& sequences, const PagedAttentionInputs& inputs);

}  // namespace an1
