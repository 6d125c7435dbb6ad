// The whole of an1d behind its main(): flags and environment (README, "Configuration"), logging,
// license loading, signal handling and graceful shutdown.
//
// `trusted_keys` are the public keys licenses may be signed with. an1d passes the keys compiled
// into the build; there is deliberately no flag or variable that adds one at run time.
#pragma once

#include <vector>

#include "engine/license/token.h"

namespace an1::server {

// Runs until SIGTERM or SIGINT. Returns the process exit status: 0 after a clean drain, 1 when
// the server cannot start, 2 for bad usage.
int RunDaemon(int argc, char** argv, const std::vector<license::PublicKey>& trusted_keys);

}  // namespace an1::server
