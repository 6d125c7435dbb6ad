#include "server/unix_listen.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "server/unix_socket_address.h"

namespace an1::server {

StatusOr<std::unique_ptr<UnixListenPath>> UnixListenPath::Claim(const std::string& path) {
  StatusOr<sockaddr_un> address = UnixSocketAddress(path, "gRPC Unix socket");
  if (!address.ok()) return address.status();
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    if (SomeoneListens(*address, SOCK_STREAM)) {
      return UnavailableError("cannot listen for gRPC on unix:" + path +
                              ": another server is serving on it");
    }
    // Stale (nobody answers): gRPC replaces it when it binds.
  }
  return std::unique_ptr<UnixListenPath>(new UnixListenPath(path));
}

Status UnixListenPath::Bound() {
  struct stat st {};
  if (lstat(path_.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return UnavailableError("the gRPC Unix socket " + path_ + " is not there after binding");
  }
  if (fchmodat(AT_FDCWD, path_.c_str(), 0666, AT_SYMLINK_NOFOLLOW) != 0) {
    return UnavailableError("cannot set the mode of the gRPC Unix socket " + path_ + ": " +
                            std::strerror(errno));
  }
  bound_ = true;
  device_ = st.st_dev;
  inode_ = st.st_ino;
  return OkStatus();
}

UnixListenPath::~UnixListenPath() {
  struct stat st {};
  if (bound_ && lstat(path_.c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_) {
    unlink(path_.c_str());
  }
}

}  // namespace an1::server
