// Which backend runs a request, as a pure function of what is known when it arrives: the
// backend asked for, the server's policy for `auto`, and why an1 cannot run (if it cannot).
//
// The contract (README, "API"): `auto` runs an1 when it is available and covers the problem,
// else the baseline, saying why; an explicit an1 (asked by the request, or by the server's
// --backend an1 policy for an `auto` request) is never silently replaced: FAILED_PRECONDITION
// when an1 is unavailable, UNIMPLEMENTED when its kernels do not cover the problem.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/options.h"
#include "engine/status.h"

namespace an1 {

// "auto", "an1", "baseline".
std::string_view BackendKindName(BackendKind kind);
// Parses the names above; nullopt for anything else.
std::optional<BackendKind> ParseBackendKind(std::string_view name);

// The backend a request will run on, and why it is not the one asked for.
struct BackendChoice {
  BackendKind kind = BackendKind::kBaseline;  // never kAuto
  BackendKind requested = BackendKind::kAuto;
  std::string reason;  // empty when `kind` is what was asked for (or what auto prefers)
};

struct BackendChoiceFacts {
  BackendKind requested = BackendKind::kAuto;
  BackendKind policy = BackendKind::kAuto;  // what `auto` means on this server
  // Empty when an1 can run the op now; otherwise why not (license, GPUs, health), for people.
  std::string an1_unavailable;
  // Empty when an1's kernels cover this problem (dtype, head_dim, ...); otherwise why not.
  std::string an1_cannot_run;
};

// The choice, or FAILED_PRECONDITION / UNIMPLEMENTED for an explicit an1 that cannot run.
StatusOr<BackendChoice> ChooseBackend(const BackendChoiceFacts& facts);

}  // namespace an1
