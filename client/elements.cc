#include "client/elements.h"

#include <bit>
#include <cmath>
#include <cstring>

namespace an1::client {

uint16_t FloatToHalf(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to infinity
  if (abs <= 0x33000000u) return static_cast<uint16_t>(sign);            // underflow to zero
  // Shift the 24-bit significand into place and round to nearest even.
  const int exponent = static_cast<int>(abs >> 23) - 127;
  const uint32_t significand = (abs & 0x7fffffu) | 0x800000u;
  const int shift = exponent < -14 ? 13 + (-14 - exponent) : 13;  // subnormals lose more bits
  uint32_t bits = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (bits & 1u))) ++bits;
  if (exponent >= -14) bits += static_cast<uint32_t>(exponent + 14) << 10;  // implicit 1 adds 1
  return static_cast<uint16_t>(sign | bits);
}

float HalfToFloat(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1f;
  const int mantissa = bits & 0x3ff;
  float magnitude;
  if (exponent == 0x1f) {
    magnitude = mantissa ? std::nanf("") : INFINITY;
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  }
  return (bits & 0x8000u) ? -magnitude : magnitude;
}

uint16_t FloatToBfloat16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

float Bfloat16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

std::string EncodeElements(const std::vector<float>& values, v1::DType dtype) {
  if (dtype == v1::DTYPE_FP32) {
    return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  }
  std::string out(values.size() * 2, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    const uint16_t bits =
        dtype == v1::DTYPE_FP16 ? FloatToHalf(values[i]) : FloatToBfloat16(values[i]);
    std::memcpy(out.data() + 2 * i, &bits, 2);
  }
  return out;
}

std::vector<float> DecodeElements(const std::string& bytes, v1::DType dtype) {
  const std::size_t size = dtype == v1::DTYPE_FP32 ? 4 : 2;
  std::vector<float> out(bytes.size() / size);
  if (dtype == v1::DTYPE_FP32) {
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    out[i] = dtype == v1::DTYPE_FP16 ? HalfToFloat(bits) : Bfloat16ToFloat(bits);
  }
  return out;
}

}  // namespace an1::client
