#include "client/elements.h"

#include <cstring>

namespace an1::client {

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
