#include "client/descriptor_passing.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace an1::client {

std::string PassDescriptor(const std::string& socket_path, int fd, const std::string& name,
                           const std::string& session, std::string* error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(address.sun_path)) {
    *error = "no usable shared memory socket path ('" + socket_path + "')";
    return "";
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return "";
  }
  timeval timeout{10, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (connect(s, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    *error = "cannot connect to the server's shared memory socket " + socket_path + ": " +
             std::strerror(errno) + " (is the server on this host?)";
    close(s);
    return "";
  }
  std::string payload = name + "\n" + session;
  iovec io{payload.data(), payload.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&message);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  char reply[512];
  ssize_t n = -1;
  if (sendmsg(s, &message, MSG_NOSIGNAL) >= 0) n = recv(s, reply, sizeof reply, 0);
  const int saved = errno;
  close(s);
  if (n <= 0) {
    *error = std::string("no answer on the shared memory socket: ") +
             (n == 0 ? "connection closed" : std::strerror(saved));
    return "";
  }
  const std::string text(reply, static_cast<std::size_t>(n));
  if (text.rfind("OK ", 0) == 0) return text.substr(3);
  *error = text.rfind("ERR ", 0) == 0 ? text.substr(4) : "unexpected answer: " + text;
  return "";
}

}  // namespace an1::client
