// The server-issued sessions (server/sessions.h): ids the server did not issue are unknown, and a
// full table makes room by forgetting its oldest never-used session instead of refusing everyone
// (a caller creating sessions in a loop cannot lock other clients out; review of issue 18).
#include "server/sessions.h"

#include <gtest/gtest.h>

namespace an1::server {
namespace {

TEST(SessionRegistryTest, AFullTableForgetsItsOldestUnusedSession) {
  SessionRegistry sessions(std::chrono::seconds(3600), /*max_sessions=*/2);
  const auto first = sessions.Create();
  const auto second = sessions.Create();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(*first, *second);
  EXPECT_EQ(first->size(), 32u);
  EXPECT_FALSE(sessions.Known("00112233445566778899aabbccddeeff"));
  EXPECT_TRUE(sessions.Known(*second));  // used: kept
  const auto third = sessions.Create();  // full: the never-used first goes
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(sessions.Known(*first));
  EXPECT_TRUE(sessions.Known(*second));
  EXPECT_TRUE(sessions.Known(*third));
  const auto fourth = sessions.Create();  // full and every session used: refused
  EXPECT_EQ(fourth.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace an1::server
