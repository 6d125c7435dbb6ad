// `an1 info`: the server's version, mode, devices (power, energy), backends, license and limits.
#pragma once

#include "client/client.h"

namespace an1::cli {

using an1::client::Client;

// Prints GetServerInfo; returns the exit status (1 with the server's error on failure).
int RunInfo(Client& client);

}  // namespace an1::cli
