#include "engine/request.h"

namespace an1 {

Status RequestControl::StopReason(std::string_view when) const {
  // When a deadline passes, the client's gRPC cancels the call, and the cancellation can reach
  // the server before the server's own copy of the deadline (which starts when the call arrives,
  // later than the client's): a cancellation this close to the deadline is the deadline's, as the
  // client sees it (DEADLINE_EXCEEDED).
  constexpr auto kDeadlineMargin = std::chrono::milliseconds(50);
  const auto now = std::chrono::steady_clock::now();
  const bool cancelled_now = cancelled && cancelled->load();
  if (now >= deadline || (cancelled_now && deadline - now <= kDeadlineMargin)) {
    return DeadlineExceededError("the deadline passed " + std::string(when));
  }
  if (cancelled_now) return CancelledError("the client cancelled the request " + std::string(when));
  return OkStatus();
}

}  // namespace an1
