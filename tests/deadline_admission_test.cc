// Deadline admission (issue 18; engine/cost_model.h): once a device has shown its rate, a request
// whose compute alone would outlast its deadline is refused at Submit with DEADLINE_EXCEEDED,
// at once, holding no worker; one with time enough is admitted; before any run nothing is refused
// for time. On the CPU engine, with real requests.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <random>

#include "engine/cost_model.h"
#include "engine/engine.h"
#include "tests/engine_runner.h"
#include "tests/reference.h"

namespace an1 {
namespace {

using Clock = std::chrono::steady_clock;

struct Attention {
  testing::Encoded q, k, v;
  AttentionInputs inputs;
  explicit Attention(std::mt19937_64& rng) {
    const int64_t b = 1, h = 4, s = 512, d = 64;  // 4 B H S S D = 268 MFLOP
    q = testing::Encode(b * h * s * d, DType::kFloat32, rng);
    k = testing::Encode(b * h * s * d, DType::kFloat32, rng);
    v = testing::Encode(b * h * s * d, DType::kFloat32, rng);
    for (auto [view, data] : {std::pair{&inputs.q, &q}, {&inputs.k, &k}, {&inputs.v, &v}}) {
      *view = TensorView{DType::kFloat32, {b, h, s, d}, data->bytes};
    }
  }
};

RequestControl DeadlineIn(std::chrono::microseconds left) {
  RequestControl control;
  control.deadline = Clock::now() + left;
  return control;
}

TEST(DeadlineAdmissionTest, RefusesAtOnceWhatCannotFinishInTime) {
  EngineOptions options;
  options.disable_gpu = true;
  options.cpu_threads = 2;
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::mt19937_64 rng(1);
  Attention a(rng);
  std::vector<std::byte> out;

  // Nothing measured yet: a tight deadline is not refused for time at admission.
  const testing::RunResult first =
      testing::RunToCompletion(**engine, (*engine)->PrepareAttention(a.inputs, BackendKind::kAuto),
                               &out, DeadlineIn(std::chrono::seconds(60)));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  const double measured = first.report.compute_seconds;
  ASSERT_GT(measured, 0.0);

  // Now the rate is known: a deadline of a tenth of the measured time is refused at Submit.
  const auto before = Clock::now();
  const testing::RunResult refused = testing::RunToCompletion(
      **engine, (*engine)->PrepareAttention(a.inputs, BackendKind::kAuto), &out,
      DeadlineIn(std::chrono::microseconds(static_cast<int64_t>(measured * 1e5))));
  const double took = std::chrono::duration<double>(Clock::now() - before).count();
  EXPECT_EQ(refused.status.code(), StatusCode::kDeadlineExceeded) << refused.status.ToString();
  EXPECT_NE(refused.status.message().find("ms of compute"), std::string::npos)
      << refused.status.message();
  EXPECT_FALSE(refused.report.executed);
  EXPECT_LT(took, measured / 2) << "the refusal must not wait for the computation";

  // Time enough: admitted and served.
  const testing::RunResult served =
      testing::RunToCompletion(**engine, (*engine)->PrepareAttention(a.inputs, BackendKind::kAuto),
                               &out, DeadlineIn(std::chrono::seconds(60)));
  EXPECT_TRUE(served.status.ok()) << served.status.ToString();
}

// The work queued ahead on the device counts (issue 18): behind three requests waiting for the one
// executor, a request whose own compute fits its deadline but not after theirs is refused at once.
TEST(DeadlineAdmissionTest, CountsTheWorkQueuedAheadOnTheDevice) {
  EngineOptions options;
  options.disable_gpu = true;
  options.cpu_threads = 2;
  options.executor_threads = 1;
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::mt19937_64 rng(2);
  Attention a(rng);
  std::vector<std::byte> out;
  double fastest = 1e9;
  for (int i = 0; i < 2; ++i) {  // the rate is known
    const testing::RunResult run = testing::RunToCompletion(
        **engine, (*engine)->PrepareAttention(a.inputs, BackendKind::kAuto), &out);
    ASSERT_TRUE(run.status.ok()) << run.status.ToString();
    fastest = std::min(fastest, run.report.compute_seconds);
  }

  // Four requests without a deadline: one runs, three wait for the single executor.
  constexpr int kAhead = 4;
  std::vector<std::vector<std::byte>> outs(kAhead);
  std::vector<std::promise<Status>> done(kAhead);
  for (int i = 0; i < kAhead; ++i) {
    StatusOr<PreparedRequest> prepared = (*engine)->PrepareAttention(a.inputs, BackendKind::kAuto);
    ASSERT_TRUE(prepared.ok());
    outs[i].resize(prepared->output.byte_size);
    ASSERT_TRUE(
        (*engine)
            ->Submit(
                std::move(prepared).value(),
                [&outs, i](const TensorSpec&) -> StatusOr<std::span<std::byte>> {
                  return std::span<std::byte>(outs[i]);
                },
                RequestControl{},
                [&done, i](const Status& s, const ExecutionReport&) { done[i].set_value(s); })
            .ok());
  }
  // Its own compute (at most `fastest`) fits 1.5 x fastest; after two or three like it, it cannot.
  const testing::RunResult refused = testing::RunToCompletion(
      **engine, (*engine)->PrepareAttention(a.inputs, BackendKind::kAuto), &out,
      DeadlineIn(std::chrono::microseconds(static_cast<int64_t>(fastest * 1.5e6))));
  EXPECT_EQ(refused.status.code(), StatusCode::kDeadlineExceeded) << refused.status.ToString();
  EXPECT_NE(refused.status.message().find("queued ahead"), std::string::npos)
      << refused.status.message();
  EXPECT_FALSE(refused.report.executed);
  for (auto& d : done) EXPECT_TRUE(d.get_future().get().ok());

  // With the queue empty again the same deadline is met.
  const testing::RunResult served = testing::RunToCompletion(
      **engine, (*engine)->PrepareAttention(a.inputs, BackendKind::kAuto), &out,
      DeadlineIn(std::chrono::microseconds(static_cast<int64_t>(fastest * 20e6))));
  EXPECT_TRUE(served.status.ok()) << served.status.ToString();
}

TEST(DeadlineAdmissionTest, CostModelKeepsTheFastestRateAndIgnoresSmallRuns) {
  CostModel model;
  EXPECT_FALSE(model.Estimate(BackendKind::kBaseline, OpKind::kMatmul, 1e9));
  model.Record(BackendKind::kBaseline, OpKind::kMatmul, 1e6, 1.0);  // small: ignored
  EXPECT_FALSE(model.Estimate(BackendKind::kBaseline, OpKind::kMatmul, 1e9));
  model.Record(BackendKind::kBaseline, OpKind::kMatmul, 1e9, 0.1);
  model.Record(BackendKind::kBaseline, OpKind::kMatmul, 1e9, 0.5);  // slower: decays 1% only
  EXPECT_NEAR(*model.Estimate(BackendKind::kBaseline, OpKind::kMatmul, 2e9), 0.202, 1e-9);
  EXPECT_FALSE(model.Estimate(BackendKind::kAn1, OpKind::kMatmul, 1e9));     // per backend
  EXPECT_FALSE(model.Estimate(BackendKind::kBaseline, OpKind::kMatmul, 0));  // unknown work
}

}  // namespace
}  // namespace an1
