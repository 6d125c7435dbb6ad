// The gRPC service on a Unix-domain socket (--listen-unix PATH) beside the TCP port, for clients
// on the same host (the shared memory and CUDA IPC clients are by definition): the same service,
// credentials and authorization, reached as the gRPC target `unix:PATH`, without the loopback
// TCP stack on every call.
//
// gRPC itself binds the socket and would silently take over a path another live server is
// serving on (it unlinks any socket file before binding), so the path is checked here first.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "engine/status.h"

namespace an1::server {

class UnixListenPath {
 public:
  // Before gRPC binds `path`: INVALID_ARGUMENT when it is empty or longer than a socket address
  // holds, UNAVAILABLE when a server answers on it already (a stale socket file, on which nobody
  // answers, is replaced by gRPC's bind).
  static StatusOr<std::unique_ptr<UnixListenPath>> Claim(const std::string& path);
  // After gRPC bound it: mode 0666, set without following a symlink (any local user may connect,
  // as to the loopback TCP port; calls are authorized as on TCP), and the file's identity noted.
  // UNAVAILABLE when the socket file is not there.
  Status Bound();
  // Removes the socket file if it is still the one this server bound.
  ~UnixListenPath();
  UnixListenPath(const UnixListenPath&) = delete;
  UnixListenPath& operator=(const UnixListenPath&) = delete;

  const std::string& path() const { return path_; }
  // The gRPC address: "unix:" + path.
  std::string address() const { return "unix:" + path_; }

 private:
  explicit UnixListenPath(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool bound_ = false;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

}  // namespace an1::server
