// One-time tickets for shared memory descriptors a client passed to the server (shm_socket.h).
//
// A client opens its shared memory object itself and sends the descriptor over the server's Unix
// socket; it gets back a ticket, a 128-bit random secret, which RegisterSystemSharedMemory then
// carries. The server thus uses only descriptors the caller could open, with the access the
// caller opened them with, never an object it opened by name with its own rights (no confused
// deputy). A ticket is bound to the region name and the session (sessions.h) the client sent with
// the descriptor, is redeemed at most once and expires after `ttl`; unredeemed descriptors are
// closed. At most max_per_session tickets of one session wait at once, so one caller cannot take
// every slot; tickets are keyed by their SHA-256 (lookups leak nothing of a guess). Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

#include "engine/status.h"

namespace an1::server {

// An open descriptor, closed by the destructor unless released.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

class DescriptorTickets {
 public:
  explicit DescriptorTickets(std::chrono::milliseconds ttl = std::chrono::seconds(30),
                             std::size_t max_pending = 64, std::size_t max_per_session = 4)
      : ttl_(ttl), max_pending_(max_pending), max_per_session_(max_per_session) {}

  // A ticket for `fd`, to be redeemed for region `name` by a call of `session`.
  // RESOURCE_EXHAUSTED when max_pending tickets, or max_per_session of `session`, are waiting
  // (the descriptor is closed then).
  StatusOr<std::string> Issue(UniqueFd fd, const std::string& name, const std::string& session);
  // The descriptor of `ticket`, once. PERMISSION_DENIED for an unknown, used or expired ticket,
  // or one issued for another region name or another session (the ticket is spent then too).
  StatusOr<UniqueFd> Redeem(const std::string& ticket, const std::string& name,
                            const std::string& session);
  std::size_t pending() const;

 private:
  struct Entry {
    UniqueFd fd;
    std::string name;
    std::string session;
    std::chrono::steady_clock::time_point expires;
  };
  void ExpireLocked(std::chrono::steady_clock::time_point now);

  std::chrono::milliseconds ttl_;
  std::size_t max_pending_;
  std::size_t max_per_session_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // by TokenHash(ticket)
};

}  // namespace an1::server
