// Runs one request through an Engine and waits for it: shared by the engine-level tests.
#pragma once

#include <future>
#include <vector>

#include "engine/engine.h"

namespace an1::testing {

struct RunResult {
  Status status;
  ExecutionReport report;
};

template <typename Prepared>
RunResult RunToCompletion(Engine& engine, StatusOr<Prepared> prepared, std::vector<std::byte>* out,
                          RequestControl control = {}) {
  if (!prepared.ok()) return {prepared.status(), {}};
  out->assign(prepared->output.byte_size, std::byte{0xff});  // poisoned: NaN everywhere
  std::promise<RunResult> done;
  Status admitted = engine.Submit(
      std::move(prepared).value(),
      [out](const TensorSpec&) -> StatusOr<std::span<std::byte>> {
        return std::span<std::byte>(*out);
      },
      std::move(control),
      [&done](const Status& s, const ExecutionReport& r) {
        done.set_value({s, r});
      });
  if (!admitted.ok()) return {admitted, {}};
  return done.get_future().get();
}

}  // namespace an1::testing
