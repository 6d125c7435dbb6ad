// The attribution of a GPU's energy counter to the requests that ran (engine/energy_meter.h),
// with the counter's readings given by the test.
#include "engine/energy_meter.h"

#include <gtest/gtest.h>

namespace an1 {
namespace {

using Clock = EnergyMeter::Clock;
using std::chrono::milliseconds;

class EnergyMeterTest : public ::testing::Test {
 protected:
  std::optional<double> counter_ = 100.0;  // joules; nullopt: the read fails
  EnergyMeter meter_{[this] { return counter_; }};
  const Clock::time_point t0_ = Clock::now();
  Clock::time_point At(int ms) const { return t0_ + milliseconds(ms); }
  void SetUp() override { meter_.JoulesSinceStart(At(0)); }  // the last read: t = 0, 100 J
};

TEST_F(EnergyMeterTest, OneRequestGetsTheWholeIncrease) {
  const uint64_t token = meter_.Begin(At(0));
  counter_ = 112.5;
  EXPECT_DOUBLE_EQ(meter_.End(token, At(1000)), 12.5);
  EXPECT_DOUBLE_EQ(*meter_.JoulesSinceStart(At(1000)), 12.5);
}

TEST_F(EnergyMeterTest, OverlappingRequestsShareByTimeAndAddUpToTheCounter) {
  const uint64_t a = meter_.Begin(At(0));
  const uint64_t b = meter_.Begin(At(500));
  counter_ = 130;  // +30 J over [0, 1000]: a ran 1000 ms of it, b 500 ms
  const double ea = meter_.End(a, At(1000));
  counter_ = 140;  // +10 J over [1000, 2000]: b alone
  const double eb = meter_.End(b, At(2000));
  EXPECT_DOUBLE_EQ(ea, 20);
  EXPECT_DOUBLE_EQ(eb, 10 + 10);
  EXPECT_DOUBLE_EQ(ea + eb, 40);  // every joule the counter gained while busy
}

TEST_F(EnergyMeterTest, IdleTimeIsNotAttributed) {
  const uint64_t c = meter_.Begin(At(1000));  // idle for the first half of the interval
  counter_ = 120;
  EXPECT_DOUBLE_EQ(meter_.End(c, At(2000)), 10);
  EXPECT_DOUBLE_EQ(*meter_.JoulesSinceStart(At(2000)), 20);  // the counter itself has it all
}

TEST_F(EnergyMeterTest, FailedReadsGiveZeroAndCountingResumes) {
  counter_ = std::nullopt;
  const uint64_t a = meter_.Begin(At(0));
  EXPECT_EQ(meter_.End(a, At(10)), 0);
  EXPECT_FALSE(meter_.JoulesSinceStart(At(10)).has_value());
  counter_ = 150;  // the increase over the failed reads is kept for whoever runs next
  const uint64_t b = meter_.Begin(At(20));
  counter_ = 151;
  EXPECT_DOUBLE_EQ(meter_.End(b, At(30)), 51 * (10.0 / 30.0));
}

TEST_F(EnergyMeterTest, ACounterThatGoesBackwardsAttributesNothing) {
  const uint64_t a = meter_.Begin(At(0));
  counter_ = 90;  // a driver reload resets the counter
  EXPECT_EQ(meter_.End(a, At(100)), 0);
}

TEST(EnergyMeterStartTest, AMeterWhoseFirstReadFailsStartsAtItsFirstGoodRead) {
  std::optional<double> counter;
  EnergyMeter meter([&] { return counter; });
  counter = 500;
  EXPECT_DOUBLE_EQ(*meter.JoulesSinceStart(), 0);
  counter = 507;
  EXPECT_DOUBLE_EQ(*meter.JoulesSinceStart(), 7);
}

}  // namespace
}  // namespace an1
