#include "server/unix_socket_address.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace an1::server {

StatusOr<sockaddr_un> UnixSocketAddress(const std::string& path, const std::string& what) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path) ||
      path.find('\0') != std::string::npos) {
    return InvalidArgumentError("the " + what + " path must be 1-" +
                                std::to_string(sizeof(address.sun_path) - 1) + " bytes");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

bool SomeoneListens(const sockaddr_un& address, int type) {
  const int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  const bool answered =
      connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  close(probe);
  return answered;
}

}  // namespace an1::server
