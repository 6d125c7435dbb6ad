// Checks of one request tensor against its expected rank, dtype, byte count and the size limit,
// shared by the validation of every op (validation.h, paged_validation.h).
//
// Pure functions, thread-safe. Each returns OK or an INVALID_ARGUMENT status whose message names
// the tensor (`name`) and the dimension at fault; CheckWithinLimit returns RESOURCE_EXHAUSTED.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/options.h"
#include "engine/status.h"
#include "engine/tensor.h"

namespace an1 {

// Bytes of a `dtype` tensor of `shape`, computed without overflow; every dimension must be >= 1.
StatusOr<std::size_t> ByteSizeOf(const char* name, DType dtype, const std::vector<int64_t>& shape);
// RESOURCE_EXHAUSTED when `bytes` is above limits.max_tensor_bytes.
Status CheckWithinLimit(const char* name, std::size_t bytes, const Limits& limits);
// The data holds exactly the bytes its dtype and shape call for, within the size limit.
Status CheckTensor(const char* name, const TensorView& t, const Limits& limits);
// `layout` describes the dimensions for the message, e.g. "(batch, heads, seq_len, head_dim)".
Status CheckRank(const char* name, const TensorView& t, std::size_t rank, const char* layout);
Status CheckSameDType(const char* name, const TensorView& t, const char* ref_name, DType ref);
// fp16, bf16 or fp32 (not int32).
Status CheckFloatDType(const char* name, const TensorView& t);
// `what` names the dimension: "k head_dim (k.shape[3])".
Status CheckDimEqual(const std::string& what, int64_t got, int64_t want);

}  // namespace an1
