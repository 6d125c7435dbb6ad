// The CPU backend's parallel loop that stops between iterations once its request should stop.
#pragma once

#include <cstdint>
#include <functional>

#include "engine/backend.h"
#include "engine/status.h"
#include "engine/thread_pool.h"

namespace an1 {

// ParallelFor that stops handing out iterations once the request should stop (its client left or
// its deadline passed, context.should_stop), and then returns why.
Status StoppableParallelFor(ThreadPool& pool, int64_t count, const ExecutionContext& context,
                            const std::function<void(int64_t)>& body);

}  // namespace an1
