// The shared helpers of the engine and kernels: NumPy batch broadcasting, the causal mask's
// visibility, the device identity and the fp16/bf16 converter's agreement on special values.
#include "engine/broadcast.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/device_id.h"
#include "engine/dtype.h"
#include "kernels/attention/common/causal.h"
#include "proto/an1/v1/float16.h"

namespace an1 {
namespace {

TEST(BroadcastTest, ShapesBroadcastAsInNumPy) {
  auto r = BroadcastBatch({3, 1}, {5});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(r->a, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(r->b, (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(r->count, 15);
  int64_t a = -1, b = -1;
  r->OperandIndices(7, &a, &b);  // (1, 2): a batch 1, b batch 2
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_TRUE(r->BStepsAlongLast());
  EXPECT_FALSE(r->AStepsAlongLast());
  EXPECT_FALSE(BroadcastBatch({2, 3}, {4, 3}));
  auto none = BroadcastBatch({}, {});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->count, 1);
  EXPECT_TRUE(none->shape.empty());
}

TEST(CausalTest, BottomRightAligned) {
  using kernels::attention::VisibleKeys;
  // Square: row i sees keys 0..i.
  EXPECT_EQ(VisibleKeys<int64_t>(0, 4, 4, true), 1);
  EXPECT_EQ(VisibleKeys<int64_t>(3, 4, 4, true), 4);
  // Decode (Sq < Sk): the last row sees every key, earlier ones one fewer each.
  EXPECT_EQ(VisibleKeys<int64_t>(1, 2, 10, true), 10);
  EXPECT_EQ(VisibleKeys<int64_t>(0, 2, 10, true), 9);
  // Sq > Sk: the first Sq - Sk rows see nothing.
  EXPECT_EQ(VisibleKeys<int64_t>(0, 5, 2, true), 0);
  EXPECT_EQ(VisibleKeys<int64_t>(2, 5, 2, true), 0);
  EXPECT_EQ(VisibleKeys<int64_t>(3, 5, 2, true), 1);
  EXPECT_EQ(VisibleKeys<int>(4, 5, 2, true), 2);
  EXPECT_EQ(VisibleKeys<int64_t>(0, 5, 2, false), 2);
}

TEST(DeviceIdTest, ComparedAsValuesSpelledForPeople) {
  EXPECT_EQ(DeviceId::Cpu().ToString(), "cpu");
  EXPECT_EQ(DeviceId::Cuda(3).ToString(), "cuda:3");
  EXPECT_EQ(DeviceId::Cuda(1), DeviceId::Cuda(1));
  EXPECT_NE(DeviceId::Cuda(0), DeviceId::Cpu());
  EXPECT_LT(DeviceId::Cpu(), DeviceId::Cuda(0));
}

// One converter: the engine's conversions are the wire converter's, NaN included.
TEST(Float16Test, EngineAndWireAgreeOnSpecialValues) {
  for (float x : {0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 1e-8f, -INFINITY, INFINITY, NAN, -NAN,
                  133120.0f, 5.96e-8f}) {
    EXPECT_EQ(FloatToHalfBits(x), wire::FloatToHalfBits(x)) << x;
    EXPECT_EQ(FloatToBf16Bits(x), wire::FloatToBf16Bits(x)) << x;
  }
  EXPECT_TRUE(std::isnan(wire::HalfBitsToFloat(wire::FloatToHalfBits(NAN))));
  EXPECT_TRUE(std::isnan(wire::Bf16BitsToFloat(wire::FloatToBf16Bits(NAN))));
  EXPECT_EQ(wire::HalfBitsToFloat(wire::FloatToHalfBits(65520.0f)), INFINITY);  // rounds up
}

}  // namespace
}  // namespace an1
