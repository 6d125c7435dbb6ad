// Engine behaviour around the kernels: backend selection and its reasons, admission control,
// requests dropped when their deadline passed or their client left, and draining.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <optional>
#include <thread>

namespace an1 {
namespace {

struct Inputs {
  std::vector<std::byte> q, k, v;
  AttentionInputs view;
};

// fp32 attention inputs of a given shape (zeros: the tests here are about scheduling).
std::unique_ptr<Inputs> MakeInputs(int64_t b, int64_t h, int64_t s, int64_t d) {
  auto in = std::make_unique<Inputs>();
  const std::size_t bytes = static_cast<std::size_t>(b * h * s * d) * 4;
  in->q.resize(bytes);
  in->k.resize(bytes);
  in->v.resize(bytes);
  in->view = AttentionInputs{{DType::kFloat32, {b, h, s, d}, in->q},
                             {DType::kFloat32, {b, h, s, d}, in->k},
                             {DType::kFloat32, {b, h, s, d}, in->v},
                             true,
                             {}};
  return in;
}

// An output provider writing into `out`.
OutputProvider Into(std::vector<std::byte>& out) {
  return [&out](const TensorSpec&) -> StatusOr<std::span<std::byte>> {
    return std::span<std::byte>(out);
  };
}

std::unique_ptr<Engine> MakeEngine(EngineOptions options = {}) {
  options.disable_gpu = true;
  auto engine = Engine::Create(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

TEST(EngineTest, AutoRunsBaselineAndSaysWhy) {
  auto engine = MakeEngine();
  auto in = MakeInputs(1, 2, 3, 4);
  auto prepared = engine->PrepareAttention(in->view, BackendKind::kAuto);
  ASSERT_TRUE(prepared.ok());
  EXPECT_EQ(prepared->choice.kind, BackendKind::kBaseline);
  EXPECT_NE(prepared->choice.reason.find("an1 is unavailable"), std::string::npos);
}

TEST(EngineTest, ExplicitAn1IsFailedPreconditionWithReason) {
  auto engine = MakeEngine();
  auto in = MakeInputs(1, 2, 3, 4);
  auto prepared = engine->PrepareAttention(in->view, BackendKind::kAn1);
  EXPECT_EQ(prepared.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(prepared.status().message().find("GPU use disabled"), std::string::npos)
      << prepared.status().message();
}

TEST(EngineTest, ServerPolicyAppliesToAutoOnly) {
  EngineOptions options;
  options.default_policy = BackendKind::kAn1;
  auto engine = MakeEngine(options);
  auto in = MakeInputs(1, 2, 3, 4);
  EXPECT_EQ(engine->PrepareAttention(in->view, BackendKind::kAuto).status().code(),
            StatusCode::kFailedPrecondition);
  auto baseline = engine->PrepareAttention(in->view, BackendKind::kBaseline);
  ASSERT_TRUE(baseline.ok());
  EXPECT_TRUE(baseline->choice.reason.empty());

  options.default_policy = BackendKind::kBaseline;
  auto engine2 = MakeEngine(options);
  auto prepared = engine2->PrepareAttention(in->view, BackendKind::kAuto);
  ASSERT_TRUE(prepared.ok());
  EXPECT_EQ(prepared->choice.reason, "the server's backend policy is baseline");
}

TEST(EngineTest, RejectsInvalidOptions) {
  EngineOptions options;
  options.max_queue_depth = 0;
  EXPECT_EQ(Engine::Create(options).status().code(), StatusCode::kInvalidArgument);
}

// Submits one request and waits for its completion.
Status RunOnce(Engine& engine, const AttentionInputs& in, RequestControl control,
               ExecutionReport* report = nullptr) {
  auto prepared = engine.PrepareAttention(in, BackendKind::kAuto);
  if (!prepared.ok()) return prepared.status();
  std::vector<std::byte> out(prepared->output.byte_size);
  std::promise<std::pair<Status, ExecutionReport>> done;
  Status admitted = engine.Submit(std::move(prepared).value(), Into(out), std::move(control),
                                  [&](const Status& s, const ExecutionReport& r) {
                                    done.set_value({s, r});
                                  });
  if (!admitted.ok()) return admitted;
  auto [status, r] = done.get_future().get();
  if (report) *report = r;
  return status;
}

TEST(EngineTest, ReportsTimesAndDevice) {
  auto engine = MakeEngine();
  auto in = MakeInputs(1, 2, 33, 16);
  ExecutionReport report;
  ASSERT_TRUE(RunOnce(*engine, in->view, {}, &report).ok());
  EXPECT_EQ(report.device, DeviceId::Cpu());
  EXPECT_EQ(report.backend, BackendKind::kBaseline);
  EXPECT_GE(report.queue_seconds, 0);
  EXPECT_GT(report.compute_seconds, 0);
}

TEST(EngineTest, DropsRequestsPastTheirDeadline) {
  auto engine = MakeEngine();
  auto in = MakeInputs(1, 2, 3, 4);
  RequestControl control;
  control.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  EXPECT_EQ(RunOnce(*engine, in->view, control).code(), StatusCode::kDeadlineExceeded);
}

TEST(EngineTest, DropsCancelledRequests) {
  auto engine = MakeEngine();
  auto in = MakeInputs(1, 2, 3, 4);
  RequestControl control;
  control.cancelled = std::make_shared<std::atomic<bool>>(true);
  EXPECT_EQ(RunOnce(*engine, in->view, control).code(), StatusCode::kCancelled);
}

TEST(EngineTest, OutputOfTheWrongSizeOrRefusedFailsTheRequest) {
  auto engine = MakeEngine();
  auto in = MakeInputs(1, 2, 3, 4);
  std::vector<std::byte> out(7);
  for (OutputProvider provider :
       {Into(out), OutputProvider([](const TensorSpec&) -> StatusOr<std::span<std::byte>> {
          return ResourceExhaustedError("no room for the output");
        })}) {
    auto prepared = engine->PrepareAttention(in->view, BackendKind::kAuto);
    ASSERT_TRUE(prepared.ok());
    std::promise<Status> done;
    ASSERT_TRUE(engine
                    ->Submit(std::move(prepared).value(), provider, {},
                             [&](const Status& s, const ExecutionReport&) { done.set_value(s); })
                    .ok());
    const Status status = done.get_future().get();
    EXPECT_TRUE(status.code() == StatusCode::kInvalidArgument ||
                status.code() == StatusCode::kResourceExhausted)
        << status.ToString();
  }
}

TEST(EngineTest, CancellationStopsAComputationUnderWay) {
  EngineOptions options;
  options.cpu_threads = 1;
  auto engine = MakeEngine(options);
  auto in = MakeInputs(1, 1, 20000, 1);  // 4e8 multiply-adds: seconds on one core
  in->view.causal = false;
  auto prepared = engine->PrepareAttention(in->view, BackendKind::kAuto);
  ASSERT_TRUE(prepared.ok());
  std::vector<std::byte> out(prepared->output.byte_size);
  RequestControl control;
  control.cancelled = std::make_shared<std::atomic<bool>>(false);
  std::promise<Status> done;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine
                  ->Submit(std::move(prepared).value(), Into(out), control,
                           [&](const Status& s, const ExecutionReport&) { done.set_value(s); })
                  .ok());
  while (engine->running() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  control.cancelled->store(true);
  EXPECT_EQ(done.get_future().get().code(), StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(EngineTest, FullQueueIsResourceExhaustedAndAdmittedWorkCompletes) {
  EngineOptions options;
  options.max_queue_depth = 2;
  options.cpu_threads = 1;
  auto engine = MakeEngine(options);
  auto in = MakeInputs(1, 4, 256, 64);  // a few ms each on one core
  constexpr int kRequests = 40;
  std::vector<std::vector<std::byte>> outputs(kRequests);
  std::mutex mutex;
  std::condition_variable cv;
  int admitted = 0, rejected = 0, completed = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto prepared = engine->PrepareAttention(in->view, BackendKind::kAuto);
    ASSERT_TRUE(prepared.ok());
    outputs[i].resize(prepared->output.byte_size);
    Status s = engine->Submit(std::move(prepared).value(), Into(outputs[i]), {},
                              [&](const Status& st, const ExecutionReport&) {
                                EXPECT_TRUE(st.ok()) << st.ToString();
                                std::lock_guard lock(mutex);
                                ++completed;
                                cv.notify_all();
                              });
    if (s.ok()) {
      ++admitted;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  std::unique_lock lock(mutex);
  cv.wait(lock, [&] { return completed == admitted; });
  EXPECT_EQ(completed + rejected, kRequests);
}

// Starts a request that keeps the only executor busy until `stop` is set (one core, seconds of
// work, stopped through its cancelled flag).
struct BusyExecutor {
  std::unique_ptr<Inputs> in = MakeInputs(1, 1, 20000, 1);
  std::vector<std::byte> out;
  RequestControl control;
  std::promise<Status> done;

  explicit BusyExecutor(Engine& engine) {
    in->view.causal = false;
    auto prepared = engine.PrepareAttention(in->view, BackendKind::kAuto);
    out.resize(prepared->output.byte_size);
    control.cancelled = std::make_shared<std::atomic<bool>>(false);
    EXPECT_TRUE(engine
                    .Submit(std::move(prepared).value(), Into(out), control,
                            [this](const Status& s, const ExecutionReport&) { done.set_value(s); })
                    .ok());
    while (engine.running() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~BusyExecutor() {
    control.cancelled->store(true);
    done.get_future().wait();
  }
};

// Requests whose caller is gone hold no queue slot and no in-flight bytes: admission counts only
// requests someone still waits for, and the abandoned ones are answered (never ran) with the
// code their callers saw.
TEST(EngineTest, AbandonedRequestsLeaveTheQueueAndReleaseTheirBytes) {
  for (bool by_bytes : {false, true}) {
    EngineOptions options;
    options.cpu_threads = 1;
    options.max_queue_depth = by_bytes ? 64 : 2;
    auto small = MakeInputs(1, 1, 4, 8);
    // By bytes: the busy request plus two small ones fit, a third does not.
    const std::size_t busy_bytes = 4 * 20000 * 4, small_bytes = 4 * 4 * 8 * 4;
    options.max_inflight_bytes = by_bytes ? busy_bytes + 2 * small_bytes : (std::size_t{1} << 40);
    auto engine = MakeEngine(options);
    BusyExecutor busy(*engine);

    std::vector<std::vector<std::byte>> outs(3, std::vector<std::byte>(4 * 8 * 4));
    std::vector<std::promise<std::pair<Status, ExecutionReport>>> results(2);
    for (int i = 0; i < 2; ++i) {
      RequestControl control;
      control.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
      ASSERT_TRUE(engine
                      ->Submit(*engine->PrepareAttention(small->view, BackendKind::kAuto),
                               Into(outs[i]), control,
                               [&results, i](const Status& s, const ExecutionReport& r) {
                                 results[i].set_value({s, r});
                               })
                      .ok());
    }
    // Full now, by slots or by bytes.
    EXPECT_EQ(engine
                  ->Submit(*engine->PrepareAttention(small->view, BackendKind::kAuto),
                           Into(outs[2]), {}, [](auto&, auto&) {})
                  .code(),
              StatusCode::kResourceExhausted);
    std::this_thread::sleep_for(std::chrono::milliseconds(40));  // both deadlines pass
    std::promise<Status> live;
    ASSERT_TRUE(engine
                    ->Submit(*engine->PrepareAttention(small->view, BackendKind::kAuto),
                             Into(outs[2]), {},
                             [&](const Status& s, const ExecutionReport&) { live.set_value(s); })
                    .ok())
        << (by_bytes ? "by bytes" : "by queue slots");
    for (auto& result : results) {
      auto [status, report] = result.get_future().get();
      EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
      EXPECT_FALSE(report.executed);
    }
    EXPECT_EQ(engine->queue_depth(), 1);
    busy.control.cancelled->store(true);
    EXPECT_TRUE(live.get_future().get().ok());
  }
}

// Withdraw answers a queued request at once (on the caller's thread) with CANCELLED, or with
// DEADLINE_EXCEEDED when the deadline is what ended it, and frees its slot.
TEST(EngineTest, WithdrawAnswersAQueuedRequestAtOnce) {
  EngineOptions options;
  options.cpu_threads = 1;
  options.max_queue_depth = 1;
  auto engine = MakeEngine(options);
  BusyExecutor busy(*engine);
  auto small = MakeInputs(1, 1, 4, 8);
  std::vector<std::byte> out(4 * 8 * 4);
  for (bool deadline : {false, true}) {
    RequestControl control;
    control.cancelled = std::make_shared<std::atomic<bool>>(false);
    if (deadline)
      control.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
    std::optional<Status> answered;
    ExecutionReport report;
    report.executed = true;
    ASSERT_TRUE(engine
                    ->Submit(*engine->PrepareAttention(small->view, BackendKind::kAuto), Into(out),
                             control,
                             [&](const Status& s, const ExecutionReport& r) {
                               answered = s;
                               report = r;
                             })
                    .ok());
    EXPECT_EQ(engine->queue_depth(), 1);
    if (deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    engine->Withdraw(control);
    ASSERT_TRUE(answered.has_value());
    EXPECT_EQ(answered->code(), deadline ? StatusCode::kDeadlineExceeded : StatusCode::kCancelled);
    EXPECT_FALSE(report.executed);
    EXPECT_EQ(engine->queue_depth(), 0);
    engine->Withdraw(control);  // a second time, or after the end: nothing happens
  }
}

TEST(EngineTest, DrainFinishesQueuedWorkThenRefuses) {
  auto engine = MakeEngine();
  auto in = MakeInputs(1, 4, 128, 64);
  std::atomic<int> completed{0};
  std::vector<std::vector<std::byte>> outputs(5);
  for (auto& out : outputs) {
    auto prepared = engine->PrepareAttention(in->view, BackendKind::kAuto);
    out.resize(prepared->output.byte_size);
    ASSERT_TRUE(engine
                    ->Submit(std::move(prepared).value(), Into(out), {},
                             [&](const Status& s, const ExecutionReport&) {
                               if (s.ok()) completed.fetch_add(1);
                             })
                    .ok());
  }
  engine->Drain();
  EXPECT_EQ(completed.load(), 5);
  auto prepared = engine->PrepareAttention(in->view, BackendKind::kAuto);
  EXPECT_EQ(
      engine->Submit(std::move(prepared).value(), Into(outputs[0]), {}, [](auto&, auto&) {}).code(),
      StatusCode::kUnavailable);
}

}  // namespace
}  // namespace an1
