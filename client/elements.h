// Element encodings of the wire dtypes (fp16, bf16, fp32) for the client side.
//
// The fp16 and bf16 conversions are the wire contract's own (proto/an1/v1/float16.h, target
// an1::float16), the same converter the engine uses: round to nearest even, NaN kept quiet with
// its payload's high bits. The names below forward to it. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "an1/v1/an1.pb.h"
#include "proto/an1/v1/float16.h"

namespace an1::client {

inline uint16_t FloatToHalf(float value) { return wire::FloatToHalfBits(value); }
inline float HalfToFloat(uint16_t bits) { return wire::HalfBitsToFloat(bits); }
inline uint16_t FloatToBfloat16(float value) { return wire::FloatToBf16Bits(value); }
inline float Bfloat16ToFloat(uint16_t bits) { return wire::Bf16BitsToFloat(bits); }

// Encodes floats as little-endian elements of `dtype`.
std::string EncodeElements(const std::vector<float>& values, v1::DType dtype);
// Decodes little-endian elements of `dtype` to floats (bytes.size() must be a multiple of the
// element size; a trailing partial element is ignored).
std::vector<float> DecodeElements(const std::string& bytes, v1::DType dtype);

}  // namespace an1::client
