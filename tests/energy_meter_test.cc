// The attribution of a GPU's energy counter to the requests that ran (engine/energy_meter.h),
// with the counter's readings and the clock given by the test.
#include "engine/energy_meter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

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
  void SetUp() override { meter_.Sample(At(0)); }  // the last read: t = 0, 100 J
};

TEST_F(EnergyMeterTest, OneRequestGetsTheWholeIncrease) {
  const uint64_t token = meter_.Begin(At(0));
  counter_ = 112.5;
  meter_.Sample(At(1000));
  EXPECT_DOUBLE_EQ(meter_.End(token, At(1000)), 12.5);
  EXPECT_DOUBLE_EQ(*meter_.JoulesSinceStart(), 12.5);
}

TEST_F(EnergyMeterTest, OverlappingRequestsShareByTimeAndAddUpToTheCounter) {
  const uint64_t a = meter_.Begin(At(0));
  const uint64_t b = meter_.Begin(At(500));
  counter_ = 130;  // +30 J over [0, 1000]: a ran 1000 ms of it, b 500 ms
  meter_.Sample(At(1000));
  const double ea = meter_.End(a, At(1000));
  counter_ = 140;  // +10 J over [1000, 2000]: b alone
  meter_.Sample(At(2000));
  const double eb = meter_.End(b, At(2000));
  EXPECT_DOUBLE_EQ(ea, 20);
  EXPECT_DOUBLE_EQ(eb, 10 + 10);
}

TEST_F(EnergyMeterTest, IdleTimeIsNotAttributed) {
  const uint64_t c = meter_.Begin(At(1000));  // idle for the first half of the interval
  counter_ = 120;
  meter_.Sample(At(2000));
  EXPECT_DOUBLE_EQ(meter_.End(c, At(2000)), 10);
  EXPECT_DOUBLE_EQ(*meter_.JoulesSinceStart(), 20);  // the counter itself has it all
}

TEST_F(EnergyMeterTest, ARequestEndingBetweenSamplesGetsAnEstimateThatTheNextSampleRespects) {
  const uint64_t a = meter_.Begin(At(0));
  counter_ = 110;
  meter_.Sample(At(100));
  counter_ = 120;
  meter_.Sample(At(200));  // 100 W over the last 200 ms
  const uint64_t b = meter_.Begin(At(200));
  // 50 ms at 100 W, shared with a, which runs too: 2.5 J, without reading the counter.
  const double eb = meter_.End(b, At(250));
  EXPECT_DOUBLE_EQ(eb, 2.5);
  counter_ = 130;
  meter_.Sample(At(300));  // +10 J: 2.5 J of it went to b already, a gets the rest
  const double ea = meter_.End(a, At(300));
  EXPECT_DOUBLE_EQ(ea, 20 + 7.5);
  EXPECT_DOUBLE_EQ(ea + eb, 30);  // the counter's whole increase, nothing counted twice
}

TEST_F(EnergyMeterTest, EnergyOfAReadThatFindsNothingRunningGoesToTheNextRequests) {
  const uint64_t a = meter_.Begin(At(0));
  EXPECT_EQ(meter_.End(a, At(500)), 0);  // no power known yet: no estimate
  counter_ = 110;
  meter_.Sample(At(1000));  // +10 J, busy half the time: 5 J, and nobody is running
  const uint64_t b = meter_.Begin(At(1000));
  counter_ = 120;
  meter_.Sample(At(2000));  // +10 J busy, plus the 5 J owed
  EXPECT_DOUBLE_EQ(meter_.End(b, At(2000)), 15);
}

TEST_F(EnergyMeterTest, AnIdleIntervalDropsWhatIsOwed) {
  const uint64_t a = meter_.Begin(At(0));
  meter_.End(a, At(500));
  counter_ = 110;
  meter_.Sample(At(1000));  // 5 J owed to the next requests...
  counter_ = 111;
  meter_.Sample(At(2000));  // ...but a whole second passes with none: dropped
  const uint64_t b = meter_.Begin(At(2000));
  counter_ = 121;
  meter_.Sample(At(3000));
  EXPECT_DOUBLE_EQ(meter_.End(b, At(3000)), 10);
}

TEST_F(EnergyMeterTest, FailedReadsAttributeNothingAndCountingResumes) {
  counter_ = std::nullopt;
  const uint64_t a = meter_.Begin(At(0));
  meter_.Sample(At(5));
  EXPECT_EQ(meter_.End(a, At(10)), 0);
  counter_ = 150;
  const uint64_t b = meter_.Begin(At(20));
  meter_.Sample(At(30));  // +50 J over 30 ms, of which 20 ms busy (a 10, b 10): b is left
  EXPECT_DOUBLE_EQ(meter_.End(b, At(30)), 50.0 * 20 / 30);
  EXPECT_DOUBLE_EQ(*meter_.JoulesSinceStart(), 50);
}

TEST_F(EnergyMeterTest, ACounterThatGoesBackwardsAttributesNothing) {
  const uint64_t a = meter_.Begin(At(0));
  counter_ = 90;  // a driver reload resets the counter
  meter_.Sample(At(100));
  EXPECT_EQ(meter_.End(a, At(100)), 0);
}

TEST(EnergyMeterRaceTest, RequestsThatBeginOrEndDuringARead) {
  // The read takes a while; a request begins and another ends while it runs. Nobody may get a
  // negative share, and the shares add up to the increase.
  double counter = 100;
  EnergyMeter* self = nullptr;
  uint64_t late = 0;
  bool during_read = false;
  EnergyMeter meter([&]() -> std::optional<double> {
    if (during_read) {
      during_read = false;
      late = self->Begin();  // begins during the read, so before the read's timestamp
      std::this_thread::sleep_for(milliseconds(3));
    }
    return counter;
  });
  self = &meter;
  meter.Sample();
  const uint64_t early = meter.Begin();
  std::this_thread::sleep_for(milliseconds(5));
  counter = 130;
  during_read = true;
  meter.Sample();
  const double e_early = meter.End(early);
  counter = 140;
  meter.Sample();
  const double e_late = meter.End(late);
  EXPECT_GE(e_early, 0);
  EXPECT_GE(e_late, 0);
  EXPECT_NEAR(e_early + e_late, 40, 1.0);  // the estimates since the last read are small
}

TEST(EnergyMeterStartTest, AMeterWhoseFirstReadFailsStartsAtItsFirstGoodRead) {
  std::optional<double> counter;
  EnergyMeter meter([&] { return counter; });
  EXPECT_FALSE(meter.JoulesSinceStart().has_value());
  counter = 500;
  meter.Sample();
  EXPECT_DOUBLE_EQ(*meter.JoulesSinceStart(), 0);
  counter = 507;
  meter.Sample();
  EXPECT_DOUBLE_EQ(*meter.JoulesSinceStart(), 7);
}

TEST(EnergyMeterSamplerTest, TheSamplerThreadReadsUntilTheMeterIsDestroyed) {
  std::atomic<int> reads{0};
  {
    EnergyMeter meter([&] { return static_cast<double>(++reads); });
    meter.StartSampling(milliseconds(2));
    std::this_thread::sleep_for(milliseconds(100));
    EXPECT_GT(*meter.JoulesSinceStart(), 5);
  }
  const int after = reads.load();
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(reads.load(), after);  // stopped
}

}  // namespace
}  // namespace an1
