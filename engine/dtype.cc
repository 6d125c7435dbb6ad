#include "engine/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "proto/an1/v1/float16.h"

namespace an1 {

std::size_t DTypeSize(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kInt32 ? 4 : 2;
}

bool IsFloatDType(DType dtype) { return dtype != DType::kInt32; }

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
    case DType::kFloat32:
      return "fp32";
    case DType::kInt32:
      return "int32";
  }
  return "unknown";
}

std::optional<DType> ParseDType(std::string_view name) {
  if (name == "fp16") return DType::kFloat16;
  if (name == "bf16") return DType::kBFloat16;
  if (name == "fp32") return DType::kFloat32;
  return std::nullopt;
}

uint16_t FloatToHalfBits(float value) { return wire::FloatToHalfBits(value); }
float HalfBitsToFloat(uint16_t bits) { return wire::HalfBitsToFloat(bits); }
uint16_t FloatToBf16Bits(float value) { return wire::FloatToBf16Bits(value); }
float Bf16BitsToFloat(uint16_t bits) { return wire::Bf16BitsToFloat(bits); }

void ConvertToFloat(DType dtype, const std::byte* src, std::size_t count, float* dst) {
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kFloat16:
    case DType::kBFloat16: {
      const bool half = dtype == DType::kFloat16;
      for (std::size_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, 2);
        dst[i] = half ? HalfBitsToFloat(bits) : Bf16BitsToFloat(bits);
      }
      return;
    }
    case DType::kInt32:
      for (std::size_t i = 0; i < count; ++i) {
        int32_t value;
        std::memcpy(&value, src + 4 * i, 4);
        dst[i] = static_cast<float>(value);
      }
      return;
  }
}

void ConvertFromFloat(DType dtype, const float* src, std::size_t count, std::byte* dst) {
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kFloat16:
    case DType::kBFloat16: {
      const bool half = dtype == DType::kFloat16;
      for (std::size_t i = 0; i < count; ++i) {
        const uint16_t bits = half ? FloatToHalfBits(src[i]) : FloatToBf16Bits(src[i]);
        std::memcpy(dst + 2 * i, &bits, 2);
      }
      return;
    }
    case DType::kInt32:
      for (std::size_t i = 0; i < count; ++i) {
        const float x = std::nearbyint(src[i]);
        const int32_t value = !(x >= -2147483648.0f) ? INT32_MIN
                              : x >= 2147483648.0f   ? INT32_MAX
                                                     : static_cast<int32_t>(x);
        std::memcpy(dst + 4 * i, &value, 4);
      }
      return;
  }
}

}  // namespace an1
