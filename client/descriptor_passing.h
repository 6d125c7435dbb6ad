// Passing a shared memory descriptor to an1d over its Unix socket (server/shm_socket.h): the
// client opens its object itself, so the server reaches only what the client could.
#pragma once

#include <string>

namespace an1::client {

// Sends `fd` (SCM_RIGHTS) with the region name `name` and the caller's session id (CreateSession)
// to the socket at `socket_path` and returns the server's one-time ticket for a
// RegisterSystemSharedMemory of that session; on failure returns an empty string and sets
// *error. `fd` stays open (the server holds its own copy).
std::string PassDescriptor(const std::string& socket_path, int fd, const std::string& name,
                           const std::string& session, std::string* error);

}  // namespace an1::client
