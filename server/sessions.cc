#include "server/sessions.h"

#include <openssl/rand.h>

#include <iterator>

namespace an1::server {

void SessionRegistry::ExpireLocked(std::chrono::steady_clock::time_point now) {
  if (idle_.count() <= 0 || now < next_sweep_) return;
  next_sweep_ = now + std::chrono::seconds(1);
  for (auto it = last_used_.begin(); it != last_used_.end();) {
    it = now - it->second > idle_ ? last_used_.erase(it) : std::next(it);
  }
}

StatusOr<std::string> SessionRegistry::Create() {
  unsigned char random[16];
  if (RAND_bytes(random, sizeof random) != 1) return InternalError("no random bytes for a session");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : random) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  ExpireLocked(now);
  if (last_used_.size() >= max_sessions_) {
    return ResourceExhaustedError("the server holds " + std::to_string(last_used_.size()) +
                                  " sessions, its limit");
  }
  last_used_.emplace(id, now);
  return id;
}

StatusOr<std::string> SessionRegistry::Resolve(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  const auto [first, last] = metadata.equal_range("an1-session-id");
  if (first == last) {
    return Status{StatusCode::kUnauthenticated,
                  "shared memory needs a session: call CreateSession and send its id as the "
                  "'an1-session-id' request metadata entry"};
  }
  if (std::next(first) != last) {
    return Status{StatusCode::kUnauthenticated,
                  "the 'an1-session-id' request metadata entry is given more than once"};
  }
  const std::string id(first->second.data(), first->second.size());
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  ExpireLocked(now);
  const auto found = last_used_.find(id);
  if (found == last_used_.end()) {
    return Status{StatusCode::kUnauthenticated,
                  "unknown or expired session ('an1-session-id'): call CreateSession"};
  }
  found->second = now;
  return id;
}

}  // namespace an1::server
