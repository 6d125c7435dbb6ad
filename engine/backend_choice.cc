#include "engine/backend_choice.h"

namespace an1 {

std::string_view BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto:
      return "auto";
    case BackendKind::kAn1:
      return "an1";
    case BackendKind::kBaseline:
      return "baseline";
  }
  return "unknown";
}

std::optional<BackendKind> ParseBackendKind(std::string_view name) {
  if (name == "auto") return BackendKind::kAuto;
  if (name == "an1") return BackendKind::kAn1;
  if (name == "baseline") return BackendKind::kBaseline;
  return std::nullopt;
}

StatusOr<BackendChoice> ChooseBackend(const BackendChoiceFacts& facts) {
  const BackendKind wanted = facts.requested == BackendKind::kAuto ? facts.policy : facts.requested;
  BackendChoice choice;
  choice.requested = facts.requested;
  choice.kind = BackendKind::kBaseline;
  switch (wanted) {
    case BackendKind::kBaseline:
      if (facts.requested == BackendKind::kAuto) {
        choice.reason = "the server's backend policy is baseline";
      }
      return choice;
    case BackendKind::kAn1:
      // Never a silent fallback: an explicit an1 (request or server policy) fails.
      if (!facts.an1_unavailable.empty()) {
        return FailedPreconditionError("backend an1 is unavailable: " + facts.an1_unavailable);
      }
      if (!facts.an1_cannot_run.empty()) {
        return UnimplementedError("backend an1 cannot run this request: " + facts.an1_cannot_run);
      }
      choice.kind = BackendKind::kAn1;
      return choice;
    case BackendKind::kAuto:
      if (!facts.an1_unavailable.empty()) {
        choice.reason = "an1 is unavailable: " + facts.an1_unavailable;
      } else if (!facts.an1_cannot_run.empty()) {
        choice.reason = "an1 cannot run this request: " + facts.an1_cannot_run;
      } else {
        choice.kind = BackendKind::kAn1;
      }
      return choice;
  }
  return InternalError("unknown backend policy");
}

}  // namespace an1
