// an1d for tests only (never installed or shipped): the same daemon as an1d, trusting the
// license keys listed in AN1_TEST_TRUSTED_LICENSE_KEYS instead of the compiled-in ones, so that
// tests can issue tokens with a key pair they generate.
#include <cstdio>
#include <cstdlib>

#include "server/daemon.h"

int main(int argc, char** argv) {
  const char* list = std::getenv("AN1_TEST_TRUSTED_LICENSE_KEYS");
  auto keys = an1::license::ParsePublicKeyList(list ? list : "");
  if (!keys.ok()) {
    std::fprintf(stderr, "bad AN1_TEST_TRUSTED_LICENSE_KEYS: %s\n",
                 keys.status().message().c_str());
    return 2;
  }
  return an1::server::RunDaemon(argc, argv, *keys);
}
