#include "server/descriptor_tickets.h"

#include <unistd.h>

#include "server/auth.h"
#include "server/random_id.h"

namespace an1::server {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.release();
  }
  return *this;
}

void DescriptorTickets::ExpireLocked(std::chrono::steady_clock::time_point now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
  }
}

StatusOr<std::string> DescriptorTickets::Issue(UniqueFd fd, const std::string& name,
                                               const std::string& session) {
  StatusOr<std::string> random = RandomId("a descriptor ticket");
  if (!random.ok()) return random.status();
  const std::string ticket = *random;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  ExpireLocked(now);
  if (entries_.size() >= max_pending_) {
    return ResourceExhaustedError(std::to_string(entries_.size()) +
                                  " passed descriptors are waiting to be registered, the limit");
  }
  std::size_t of_session = 0;
  for (const auto& [key, entry] : entries_) of_session += entry.session == session ? 1 : 0;
  if (of_session >= max_per_session_) {
    return ResourceExhaustedError("this session has " + std::to_string(of_session) +
                                  " passed descriptors waiting to be registered, the limit");
  }
  entries_.emplace(TokenHash(ticket), Entry{std::move(fd), name, session, now + ttl_});
  return ticket;
}

StatusOr<UniqueFd> DescriptorTickets::Redeem(const std::string& ticket, const std::string& name,
                                             const std::string& session) {
  std::lock_guard lock(mutex_);
  ExpireLocked(std::chrono::steady_clock::now());
  const auto it = entries_.find(TokenHash(ticket));
  if (it == entries_.end()) {
    return Status{StatusCode::kPermissionDenied,
                  "unknown, used or expired descriptor ticket (tickets are good once, for " +
                      std::to_string(ttl_.count() / 1000) + " s)"};
  }
  if (it->second.name != name || it->second.session != session) {
    entries_.erase(it);  // a ticket someone else presents is spent: no second guess
    return Status{StatusCode::kPermissionDenied,
                  "the descriptor ticket was issued for another region name or session"};
  }
  UniqueFd fd = std::move(it->second.fd);
  entries_.erase(it);
  return fd;
}

std::size_t DescriptorTickets::pending() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace an1::server
