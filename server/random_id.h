// Secrets the server hands out (session ids, descriptor tickets) and the hex form it keeps
// hashes in: 128 bits from OpenSSL's RAND_bytes as 32 lowercase hex digits.
#pragma once

#include <cstddef>
#include <string>

#include "engine/status.h"

namespace an1::server {

// Lowercase hex of `size` bytes.
std::string Hex(const unsigned char* bytes, std::size_t size);

// 128 random bits as 32 lowercase hex digits; INTERNAL, naming `what`, without random bytes.
StatusOr<std::string> RandomId(const std::string& what);

}  // namespace an1::server
