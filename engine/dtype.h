// Element types of tensors and conversions between them and float.
//
// Conversions round to nearest, ties to even, and keep infinities and NaN; they are pure
// functions, safe from any thread. Element loads and stores go through memcpy, so the byte
// buffers need no particular alignment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace an1 {

// kInt32 is for index tensors only (paged attention's page table and lengths): the float
// conversions below convert it by value, and data tensors refuse it (validation.h).
enum class DType { kFloat16, kBFloat16, kFloat32, kInt32 };

// Bytes per element: 2, 2, 4, 4.
std::size_t DTypeSize(DType dtype);
// "fp16", "bf16", "fp32", "int32" (the CLI's spelling).
std::string_view DTypeName(DType dtype);
// Parses "fp16" | "bf16" | "fp32" (the data dtypes); nullopt for anything else.
std::optional<DType> ParseDType(std::string_view name);

// fp16, bf16 or fp32: a dtype attention and matmul data may have.
bool IsFloatDType(DType dtype);

uint16_t FloatToHalfBits(float value);
float HalfBitsToFloat(uint16_t bits);
uint16_t FloatToBf16Bits(float value);
float Bf16BitsToFloat(uint16_t bits);

// Converts `count` elements of `dtype` at `src` to float at `dst`.
void ConvertToFloat(DType dtype, const std::byte* src, std::size_t count, float* dst);
// Converts `count` floats at `src` to `dtype` elements at `dst`.
void ConvertFromFloat(DType dtype, const float* src, std::size_t count, std::byte* dst);

}  // namespace an1
