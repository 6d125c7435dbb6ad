#include "server/random_id.h"

#include <openssl/rand.h>

namespace an1::server {

std::string Hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * size);
  for (std::size_t i = 0; i < size; ++i) {
    hex += kHex[bytes[i] >> 4];
    hex += kHex[bytes[i] & 15];
  }
  return hex;
}

StatusOr<std::string> RandomId(const std::string& what) {
  unsigned char random[16];
  if (RAND_bytes(random, sizeof random) != 1) return InternalError("no random bytes for " + what);
  return Hex(random, sizeof random);
}

}  // namespace an1::server
