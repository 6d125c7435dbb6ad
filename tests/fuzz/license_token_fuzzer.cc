// libFuzzer target for the license token parser: VerifyToken (structure, key lookup, base64url,
// signature) and ParsePayload (the signed text) must never crash, hang or read out of bounds,
// whatever the bytes. Built and run briefly by run_license_fuzzer.sh (ctest: license_token_fuzz).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/license/token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace an1::license;
  static const std::vector<PublicKey> keys = [] {
    PublicKey key;
    key.key_id = "fuzz";
    for (std::size_t i = 0; i < key.bytes.size(); ++i) key.bytes[i] = static_cast<uint8_t>(i * 7);
    return std::vector<PublicKey>{key, {"vendor-2026", key.bytes}};
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)VerifyToken(input, keys);
  (void)ParsePayload(input);
  (void)Base64UrlDecode(input);
  (void)ParsePublicKeyList(input);
  return 0;
}
