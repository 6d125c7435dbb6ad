// The Unix-domain socket on which clients pass their shared memory descriptors (SCM_RIGHTS).
//
// Protocol (SOCK_SEQPACKET, one request and one reply per connection): the client sends one
// message whose bytes are "NAME\nSESSION", the region name it will register and its session id
// (sessions.h, CreateSession), and whose ancillary data carries exactly one descriptor of a
// regular file (a POSIX shared memory object or a memfd) opened read-only or read-write; the
// server answers "OK <ticket>" (DescriptorTickets, bound to that name and session) or
// "ERR <reason>". The socket file is created with mode 0666: passing a descriptor grants
// nothing the sender did not already hold, and a ticket is useless without the gRPC port's own
// authorization. A client that sends nothing within a second is dropped.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "engine/status.h"
#include "server/descriptor_tickets.h"
#include "server/sessions.h"

namespace an1::server {

// The default path: $XDG_RUNTIME_DIR (else /tmp) /an1d-<pid>.sock (-<n> for a further server
// in the same process).
std::string DefaultShmSocketPath();

class ShmSocket {
 public:
  // Binds `path` (an existing socket file there is replaced) and starts serving. `tickets` (not
  // owned) must outlive this. UNAVAILABLE when the path cannot be bound.
  static StatusOr<std::unique_ptr<ShmSocket>> Start(const std::string& path,
                                                    DescriptorTickets* tickets,
                                                    SessionRegistry* sessions);
  ~ShmSocket();  // stops serving and removes the socket file
  ShmSocket(const ShmSocket&) = delete;
  ShmSocket& operator=(const ShmSocket&) = delete;

  const std::string& path() const { return path_; }

 private:
  ShmSocket(std::string path, int listen_fd, int wake_fd, DescriptorTickets* tickets,
            SessionRegistry* sessions)
      : path_(std::move(path)),
        listen_fd_(listen_fd),
        wake_fd_(wake_fd),
        tickets_(tickets),
        sessions_(sessions) {}
  void Serve();
  void HandleConnection(int connection) const;

  std::string path_;
  int listen_fd_;
  int wake_fd_;  // an eventfd: written to stop Serve
  DescriptorTickets* tickets_;
  SessionRegistry* sessions_;
  dev_t device_ = 0;
  ino_t inode_ = 0;  // of the socket file this server bound
  std::thread thread_;
};

}  // namespace an1::server
