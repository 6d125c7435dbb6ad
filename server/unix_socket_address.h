// Unix-domain socket paths, shared by the shared memory descriptor socket (shm_socket.h) and the
// gRPC service's Unix socket (unix_listen.h).
#pragma once

#include <sys/un.h>

#include <string>

#include "engine/status.h"

namespace an1::server {

// The socket address of `path`; INVALID_ARGUMENT ("the WHAT path must be 1-N bytes") when it is
// empty, holds a NUL or is longer than sun_path holds.
StatusOr<sockaddr_un> UnixSocketAddress(const std::string& path, const std::string& what);

// Whether a server accepts connections of `type` (SOCK_STREAM, SOCK_SEQPACKET) at `address`; a
// socket file on which nobody answers is stale.
bool SomeoneListens(const sockaddr_un& address, int type);

}  // namespace an1::server
