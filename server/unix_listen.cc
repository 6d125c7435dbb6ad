#include "server/unix_listen.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace an1::server {
namespace {

// Whether a server accepts connections on the stream socket at `path`.
bool SomeoneListens(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  const bool answered =
      connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  close(probe);
  return answered;
}

}  // namespace

StatusOr<std::unique_ptr<UnixListenPath>> UnixListenPath::Claim(const std::string& path) {
  constexpr std::size_t kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
  if (path.empty() || path.size() > kMaxPath || path.find('\0') != std::string::npos) {
    return InvalidArgumentError("the gRPC Unix socket path must be 1-" + std::to_string(kMaxPath) +
                                " bytes");
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    if (SomeoneListens(path)) {
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
