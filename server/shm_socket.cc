#include "server/shm_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "server/unix_socket_address.h"

namespace an1::server {

namespace {

// Whether `fd` is a POSIX shared memory object of this host's /dev/shm (its name possibly
// unlinked already: "/dev/shm/NAME (deleted)") or a memfd, by its /proc/self/fd link, which
// procfs answers without asking the file's file system.
bool SharedMemoryDescriptor(int fd) {
  char target[512];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
  if (n <= 0) return false;
  const std::string path(target, static_cast<std::size_t>(n));
  if (path.rfind("/memfd:", 0) == 0) return true;
  constexpr std::string_view kShm = "/dev/shm/", kDeleted = " (deleted)";
  if (path.rfind(kShm, 0) != 0) return false;
  std::string_view name = std::string_view(path).substr(kShm.size());
  if (name.size() > kDeleted.size() && name.substr(name.size() - kDeleted.size()) == kDeleted) {
    name.remove_suffix(kDeleted.size());
  }
  return !name.empty() && name.find('/') == std::string_view::npos;  // not in a subdirectory
}

}  // namespace

namespace {

constexpr std::size_t kMaxFds = 4;            // room to notice (and close) extra descriptors
constexpr std::size_t kMaxConnections = 256;  // waiting for their message at once
constexpr std::chrono::seconds kMessageWait{1};

void Reply(int connection, const std::string& text) {
  (void)send(connection, text.data(), text.size(), MSG_NOSIGNAL);
}

}  // namespace

std::string DefaultShmSocketPath() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::string dir = runtime != nullptr && *runtime != '\0' ? runtime : "/tmp";
  static std::atomic<int> servers{0};  // several servers in one process (tests) get their own
  const int n = servers++;
  return dir + "/an1d-" + std::to_string(getpid()) + (n == 0 ? "" : "-" + std::to_string(n)) +
         ".sock";
}

StatusOr<std::unique_ptr<ShmSocket>> ShmSocket::Start(const std::string& path,
                                                      DescriptorTickets* tickets,
                                                      SessionRegistry* sessions) {
  StatusOr<sockaddr_un> valid = UnixSocketAddress(path, "shared memory socket");
  if (!valid.ok()) return valid.status();
  const sockaddr_un address = *valid;
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == geteuid() &&
      !SomeoneListens(address, SOCK_SEQPACKET)) {
    unlink(path.c_str());  // stale: our own socket file, and no server answers on it
  }
  // The mode is set on the path without following a symlink (one swapped in after bind cannot
  // make another file world-writable); bind's own mode is subject to the umask.
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      fchmodat(AT_FDCWD, path.c_str(), 0666, AT_SYMLINK_NOFOLLOW) != 0 || listen(fd, 64) != 0) {
    const std::string reason = std::strerror(errno);
    close(fd);
    return UnavailableError("cannot listen on the shared memory socket " + path + ": " + reason);
  }
  const int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    close(fd);
    unlink(path.c_str());
    return UnavailableError(std::string("eventfd: ") + std::strerror(errno));
  }
  std::unique_ptr<ShmSocket> server(new ShmSocket(path, fd, wake, tickets, sessions));
  if (lstat(path.c_str(), &st) == 0) server->device_ = st.st_dev, server->inode_ = st.st_ino;
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

ShmSocket::~ShmSocket() {
  const uint64_t one = 1;
  (void)write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(wake_fd_);
  struct stat st {};  // remove the socket file only if it is still ours
  if (lstat(path_.c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_) {
    unlink(path_.c_str());
  }
}

// One thread, one poll loop: connections wait (up to kMessageWait, at most kMaxConnections at
// once) for their one message without holding up the others, so a local client that connects
// and sends nothing delays nobody.
void ShmSocket::Serve() {
  struct Waiting {
    int fd;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Waiting> waiting;
  auto close_all = [&] {
    for (const Waiting& w : waiting) close(w.fd);
  };
  for (;;) {
    std::vector<pollfd> fds{pollfd{listen_fd_, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}};
    int timeout_ms = -1;
    const auto now = std::chrono::steady_clock::now();
    for (const Waiting& w : waiting) {
      fds.push_back(pollfd{w.fd, POLLIN, 0});
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(w.deadline - now).count();
      const int ms = static_cast<int>(std::max<int64_t>(0, left) + 1);
      timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("shared memory socket: poll: {}", std::strerror(errno));
      close_all();
      return;
    }
    if (fds[1].revents != 0) {
      close_all();
      return;
    }
    const auto after = std::chrono::steady_clock::now();
    std::vector<Waiting> still;
    for (std::size_t i = 0; i < waiting.size(); ++i) {
      if (fds[2 + i].revents != 0) {  // its message (or its hang-up) is there
        HandleConnection(waiting[i].fd);
        close(waiting[i].fd);
      } else if (after >= waiting[i].deadline) {
        close(waiting[i].fd);  // nothing came in time
      } else {
        still.push_back(waiting[i]);
      }
    }
    waiting.swap(still);
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int connection = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (connection < 0) {
      // Out of descriptors, the pending connection stays and poll would return at once: wait a
      // little (or for the wake-up) instead of spinning. Otherwise the peer left: go on.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        pollfd wake{wake_fd_, POLLIN, 0};
        if (poll(&wake, 1, 100) > 0) {
          close_all();
          return;
        }
      }
      continue;
    }
    if (waiting.size() >= kMaxConnections) {
      Reply(connection, "ERR the server's shared memory socket is busy: try again");
      close(connection);
      continue;
    }
    waiting.push_back(Waiting{connection, after + kMessageWait});
  }
}

// `connection` is non-blocking and its message (if any) has arrived: SOCK_SEQPACKET delivers it
// whole.
void ShmSocket::HandleConnection(int connection) const {
  char name[256];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec io{name, sizeof name};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  const ssize_t n = recvmsg(connection, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) return;  // nothing came in time
  std::vector<UniqueFd> received;
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      received.emplace_back(fd);
    }
  }
  if ((message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 || received.size() != 1) {
    return Reply(connection, "ERR send exactly one descriptor, with 'NAME\\nSESSION'");
  }
  const std::string text(name, static_cast<std::size_t>(n));
  const std::size_t newline = text.find('\n');
  if (newline == std::string::npos || newline == 0 || newline > 128) {
    return Reply(connection,
                 "ERR send 'NAME\\nSESSION': a region name of 1-128 bytes, a newline "
                 "and the session id from CreateSession");
  }
  const std::string region = text.substr(0, newline), session = text.substr(newline + 1);
  if (!sessions_->Known(session)) {
    return Reply(connection, "ERR unknown or expired session: call CreateSession");
  }
  // Only POSIX shared memory objects and memfds: checked by the descriptor's path in procfs
  // before anything touches the file, so a descriptor of a FUSE or network file (whose server
  // could leave fstat, or later reads, unanswered) never reaches either.
  if (!SharedMemoryDescriptor(received[0].get())) {
    return Reply(connection,
                 "ERR the descriptor is not a POSIX shared memory object (/dev/shm) or a memfd");
  }
  const int flags = fcntl(received[0].get(), F_GETFL);
  const int access = flags & O_ACCMODE;
  if (flags < 0 || (flags & O_PATH) != 0 || (access != O_RDONLY && access != O_RDWR)) {
    return Reply(connection, "ERR the descriptor must be opened read-only or read-write");
  }
  struct stat st {};
  if (fstat(received[0].get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Reply(connection, "ERR the descriptor is not a shared memory object");
  }
  StatusOr<std::string> ticket = tickets_->Issue(std::move(received[0]), region, session);
  if (!ticket.ok()) return Reply(connection, "ERR " + ticket.status().message());
  Reply(connection, "OK " + *ticket);
}

}  // namespace an1::server
