// Element conversions of the engine (engine/dtype.h) and of the client (client/elements.h), which
// both forward to the wire contract's converter (proto/an1/v1/float16.h): every fp16 value
// round-trips, rounding agrees with the compiler's _Float16 and between the two on random and
// edge-case floats, and NaN stays a quiet NaN with its payload on both sides.
#include "engine/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include "client/elements.h"

namespace an1 {
namespace {

std::vector<float> EdgeAndRandomFloats() {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               -1.0f,
                               65504.0f,
                               65519.9f,
                               65520.0f,
                               1e9f,
                               -1e9f,
                               6.1035156e-5f,
                               5.9604645e-8f,
                               2.9802322e-8f,
                               2.98023259e-8f,
                               1e-10f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::denorm_min(),
                               0.1f,
                               1.0f / 3.0f};
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    // Random bit patterns cover every exponent, including the fp16 subnormal range.
    float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) continue;
    values.push_back(f);
  }
  for (uint32_t bits = 0x33000000u; bits < 0x38800000u; bits += 0x1001u) {
    values.push_back(std::bit_cast<float>(bits));  // dense sweep of the subnormal half range
  }
  return values;
}

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4u);
  for (DType d : {DType::kFloat16, DType::kBFloat16, DType::kFloat32}) {
    EXPECT_EQ(ParseDType(DTypeName(d)), d);
  }
  EXPECT_FALSE(ParseDType("fp64").has_value());
}

TEST(DTypeTest, EveryHalfRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float f = HalfBitsToFloat(static_cast<uint16_t>(bits));
    const bool is_nan = (bits & 0x7c00) == 0x7c00 && (bits & 0x3ff) != 0;
    if (is_nan) {
      EXPECT_TRUE(std::isnan(f)) << bits;
      // The client decodes a NaN bit for bit as the engine does (payload kept).
      EXPECT_EQ(std::bit_cast<uint32_t>(client::HalfToFloat(static_cast<uint16_t>(bits))),
                std::bit_cast<uint32_t>(f))
          << std::hex << bits;
      continue;
    }
    EXPECT_EQ(FloatToHalfBits(f), bits) << std::hex << bits;
    EXPECT_EQ(std::bit_cast<uint32_t>(client::HalfToFloat(static_cast<uint16_t>(bits))),
              std::bit_cast<uint32_t>(f))
        << std::hex << bits;
  }
}

TEST(DTypeTest, HalfRoundingMatchesCompilerAndClient) {
  for (float f : EdgeAndRandomFloats()) {
    const uint16_t ours = FloatToHalfBits(f);
#ifdef __FLT16_MAX__
    EXPECT_EQ(ours, std::bit_cast<uint16_t>(static_cast<_Float16>(f))) << f;
#endif
    EXPECT_EQ(client::FloatToHalf(f), ours) << f;
  }
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);  // ties to even rounds up to infinity
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(FloatToHalfBits(std::nanf("")))));
}

TEST(DTypeTest, Bfloat16RoundsToNearestEven) {
  for (float f : EdgeAndRandomFloats()) {
    const uint16_t ours = FloatToBf16Bits(f);
    EXPECT_EQ(client::FloatToBfloat16(f), ours);
    // The result is one of the two neighbours, the nearer one (ties to the even one).
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint16_t down = static_cast<uint16_t>(x >> 16);
    const uint32_t rest = x & 0xffffu;
    const uint16_t want =
        rest > 0x8000u || (rest == 0x8000u && (down & 1u)) ? static_cast<uint16_t>(down + 1) : down;
    EXPECT_EQ(ours, want) << f;
  }
  EXPECT_TRUE(std::isnan(Bf16BitsToFloat(FloatToBf16Bits(std::nanf("")))));
}

// The client used to turn every NaN into 0x7e00; it now keeps the NaN quiet with its payload's
// high bits and sign, as the engine does.
TEST(DTypeTest, ClientKeepsNaNPayloadLikeTheEngine) {
  const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7fc02000u,
                           0x7f802000u, 0x7fffffffu, 0xff800001u};
  for (uint32_t x : nans) {
    const float f = std::bit_cast<float>(x);
    EXPECT_EQ(client::FloatToHalf(f), FloatToHalfBits(f)) << std::hex << x;
    EXPECT_EQ(client::FloatToBfloat16(f), FloatToBf16Bits(f)) << std::hex << x;
    EXPECT_TRUE(std::isnan(client::HalfToFloat(client::FloatToHalf(f)))) << std::hex << x;
  }
  EXPECT_EQ(client::FloatToHalf(std::bit_cast<float>(0x7fc00000u)), 0x7e00);
  EXPECT_EQ(client::FloatToHalf(std::bit_cast<float>(0xffc00000u)), 0xfe00);  // sign kept
  EXPECT_EQ(client::FloatToHalf(std::bit_cast<float>(0x7fc02000u)), 0x7e01);  // payload kept
  EXPECT_EQ(client::FloatToHalf(std::bit_cast<float>(0x7f802000u)), 0x7e01);  // signalling: quiet
  EXPECT_EQ(client::FloatToBfloat16(std::bit_cast<float>(0x7f810000u)), 0x7fc1);  // quiet
  // Encoded through the client's buffer API too.
  const std::string half =
      client::EncodeElements({std::bit_cast<float>(0x7fc02000u)}, v1::DTYPE_FP16);
  ASSERT_EQ(half.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(half[0]), 0x01);
  EXPECT_EQ(static_cast<uint8_t>(half[1]), 0x7e);
}

TEST(DTypeTest, BufferConversionsRoundTrip) {
  const std::vector<float> values = {0.5f, -2.0f, 3.25f, 1024.0f};
  for (DType d : {DType::kFloat16, DType::kBFloat16, DType::kFloat32}) {
    std::vector<std::byte> bytes(values.size() * DTypeSize(d));
    ConvertFromFloat(d, values.data(), values.size(), bytes.data());
    std::vector<float> back(values.size());
    ConvertToFloat(d, bytes.data(), values.size(), back.data());
    EXPECT_EQ(back, values) << DTypeName(d);
  }
}

}  // namespace
}  // namespace an1
