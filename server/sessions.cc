#include "server/sessions.h"

#include <iterator>

#include "server/auth.h"
#include "server/random_id.h"

namespace an1::server {

void SessionRegistry::ExpireLocked(std::chrono::steady_clock::time_point now) {
  if (idle_.count() <= 0 || now < next_sweep_) return;
  next_sweep_ = now + std::chrono::seconds(1);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const Session& s = it->second;
    const bool expired =
        now - s.last_used > idle_ || (!s.used && now - s.created > kUnusedLifetime);
    it = expired ? sessions_.erase(it) : std::next(it);
  }
}

StatusOr<std::string> SessionRegistry::Create(const std::string& principal) {
  StatusOr<std::string> random = RandomId("a session");
  if (!random.ok()) return random.status();
  const std::string id = *random;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  ExpireLocked(now);
  if (sessions_.size() >= max_sessions_) {  // the oldest never-used session makes room
    auto oldest = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (!it->second.used &&
          (oldest == sessions_.end() || it->second.created < oldest->second.created)) {
        oldest = it;
      }
    }
    if (oldest == sessions_.end()) {
      return ResourceExhaustedError("the server holds " + std::to_string(sessions_.size()) +
                                    " sessions in use, its limit");
    }
    sessions_.erase(oldest);
  }
  sessions_.emplace(TokenHash(id), Session{now, now, principal});
  return id;
}

StatusOr<std::string> SessionRegistry::Resolve(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  return Resolve(metadata, "");
}

bool SessionRegistry::Known(const std::string& id) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  ExpireLocked(now);
  const auto found = sessions_.find(TokenHash(id));
  if (found == sessions_.end()) return false;
  found->second.last_used = now;
  found->second.used = true;
  return true;
}

StatusOr<std::string> SessionRegistry::Resolve(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const std::string& principal) {
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
  const auto found = sessions_.find(TokenHash(id));
  if (found == sessions_.end()) {
    return Status{StatusCode::kUnauthenticated,
                  "unknown or expired session ('an1-session-id'): call CreateSession"};
  }
  if (found->second.principal != principal) {
    return Status{StatusCode::kUnauthenticated,
                  "the session ('an1-session-id') belongs to another principal"};
  }
  found->second.last_used = now;
  found->second.used = true;
  return id;
}

}  // namespace an1::server
