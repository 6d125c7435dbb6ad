// ChooseBackend, the pure function behind every request's backend: each combination of what was
// asked for, the server's policy, and whether an1 is available and covers the problem.
#include "engine/backend_choice.h"

#include <gtest/gtest.h>

namespace an1 {
namespace {

constexpr BackendKind kAuto = BackendKind::kAuto, kAn1 = BackendKind::kAn1,
                      kBaseline = BackendKind::kBaseline;

TEST(BackendChoiceTest, AutoPrefersAn1WhenItCanRun) {
  auto choice = ChooseBackend({kAuto, kAuto, "", ""});
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->kind, kAn1);
  EXPECT_EQ(choice->requested, kAuto);
  EXPECT_EQ(choice->reason, "");
}

TEST(BackendChoiceTest, AutoRunsTheBaselineAndSaysWhy) {
  auto unavailable = ChooseBackend({kAuto, kAuto, "no valid license: expired", ""});
  ASSERT_TRUE(unavailable.ok());
  EXPECT_EQ(unavailable->kind, kBaseline);
  EXPECT_EQ(unavailable->reason, "an1 is unavailable: no valid license: expired");
  auto uncovered = ChooseBackend({kAuto, kAuto, "", "head_dim 64 or 128, not 96"});
  ASSERT_TRUE(uncovered.ok());
  EXPECT_EQ(uncovered->kind, kBaseline);
  EXPECT_EQ(uncovered->reason, "an1 cannot run this request: head_dim 64 or 128, not 96");
}

TEST(BackendChoiceTest, ExplicitAn1NeverFallsBack) {
  for (BackendKind requested : {kAn1, kAuto}) {
    const BackendKind policy = requested == kAuto ? kAn1 : kAuto;  // request, or server policy
    auto unavailable = ChooseBackend({requested, policy, "no usable GPU", ""});
    EXPECT_EQ(unavailable.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(unavailable.status().message().find("no usable GPU"), std::string::npos);
    auto uncovered = ChooseBackend({requested, policy, "", "fp16 and bf16"});
    EXPECT_EQ(uncovered.status().code(), StatusCode::kUnimplemented);
    auto runs = ChooseBackend({requested, policy, "", ""});
    ASSERT_TRUE(runs.ok());
    EXPECT_EQ(runs->kind, kAn1);
  }
}

TEST(BackendChoiceTest, BaselineWhenAskedOrByPolicy) {
  auto asked = ChooseBackend({kBaseline, kAn1, "", ""});
  ASSERT_TRUE(asked.ok());
  EXPECT_EQ(asked->kind, kBaseline);
  EXPECT_EQ(asked->reason, "");
  auto policy = ChooseBackend({kAuto, kBaseline, "", ""});
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->kind, kBaseline);
  EXPECT_EQ(policy->reason, "the server's backend policy is baseline");
}

TEST(BackendChoiceTest, NamesRoundTrip) {
  for (BackendKind kind : {kAuto, kAn1, kBaseline}) {
    EXPECT_EQ(ParseBackendKind(BackendKindName(kind)), kind);
  }
  EXPECT_EQ(ParseBackendKind("AN1"), std::nullopt);
  EXPECT_EQ(ParseBackendKind(""), std::nullopt);
}

}  // namespace
}  // namespace an1
