// an1d: the AN1 Engine server.
#include <cstdio>

#include "server/daemon.h"
#include "server/license_keys.h"

int main(int argc, char** argv) {
  auto keys = an1::license::ParsePublicKeyList(an1::server::kTrustedLicenseKeys);
  if (!keys.ok()) {  // a build-time mistake: CMake validates the list too
    std::fprintf(stderr, "an1d: bad compiled-in license keys: %s\n",
                 keys.status().message().c_str());
    return 1;
  }
  return an1::server::RunDaemon(argc, argv, *keys);
}
