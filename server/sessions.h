// Server-issued sessions: without bearer tokens, shared memory regions belong to a session, whose
// id (128 random bits, 32 lowercase hex digits) only the server hands out (CreateSession) and a
// call sends as its `an1-session-id` metadata entry. A caller cannot declare itself another's
// owner: an id the server did not issue, or one expired, is refused. The table is keyed by the
// ids' SHA-256, so a lookup's timing says nothing about how much of a guessed id matched. A
// session never used after its creation is forgotten after kUnusedLifetime, and when the table is
// full the oldest such session makes room: a caller creating sessions in a loop cannot lock
// others out for the idle time. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

#include "engine/status.h"

namespace an1::server {

class SessionRegistry {
 public:
  static constexpr std::chrono::seconds kUnusedLifetime{60};

  // Sessions unused for `idle` are forgotten (0: never); at most `max_sessions` live at once.
  explicit SessionRegistry(std::chrono::seconds idle, std::size_t max_sessions = 1 << 16)
      : idle_(idle), max_sessions_(max_sessions) {}

  // A new session id of `principal` (empty without authentication); RESOURCE_EXHAUSTED when
  // max_sessions are live and every one of them has been used.
  StatusOr<std::string> Create(const std::string& principal = "");
  // The session named by the call's `an1-session-id` entry, marked used now. UNAUTHENTICATED,
  // saying what is wrong, when the entry is absent, repeated or not an id this server issued
  // (or one that expired).
  StatusOr<std::string> Resolve(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);
  // As Resolve, and UNAUTHENTICATED unless the session was created by `principal`.
  StatusOr<std::string> Resolve(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                const std::string& principal);
  // Whether `id` is a live session (marked used now).
  bool Known(const std::string& id);

 private:
  void ExpireLocked(std::chrono::steady_clock::time_point now);

  std::chrono::seconds idle_;
  std::size_t max_sessions_;
  std::mutex mutex_;
  struct Session {
    std::chrono::steady_clock::time_point created;
    std::chrono::steady_clock::time_point last_used;
    std::string principal;
    bool used = false;  // resolved or known since its creation
  };
  std::map<std::string, Session> sessions_;  // by TokenHash(id)
  std::chrono::steady_clock::time_point next_sweep_{};
};

}  // namespace an1::server
