// AN1 license tokens: a versioned payload signed by the vendor with Ed25519.
//
//   an1lic.v1.<key id>.<payload, base64url>.<signature, base64url>
//
// The signature covers everything before its final '.', so the version and key id are signed
// too. Verification checks the size cap, the structure, the key id and the signature before it
// parses a byte of the payload. The payload is UTF-8 text, one `key=value` per line:
//
//   id=LIC-0042
//   licensee=Example Corp
//   issued_at=1795000000        (Unix seconds)
//   not_before=1795000000
//   expires_at=1826536000
//   features=an1                (comma-separated)
//   max_gpus=8                  (optional; 0 or absent: no limit)
//   gpu_uuids=GPU-...,GPU-...   (optional binding; absent: any GPU)
//   kid=vendor-2026             (must equal the key id of the token)
//
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/license/ed25519.h"
#include "engine/status.h"

namespace an1::license {

inline constexpr std::size_t kMaxTokenBytes = 4096;
inline constexpr std::string_view kTokenPrefix = "an1lic";
inline constexpr std::string_view kTokenVersion = "v1";

struct PublicKey {
  std::string key_id;
  Ed25519PublicKey bytes{};
};

struct LicenseClaims {
  std::string license_id;
  std::string licensee;
  int64_t issued_at = 0;
  int64_t not_before = 0;
  int64_t expires_at = 0;
  std::vector<std::string> features;
  int max_gpus = 0;                    // 0: no limit
  std::vector<std::string> gpu_uuids;  // empty: any GPU
  std::string key_id;

  bool HasFeature(std::string_view feature) const;
};

// Verifies a token against the embedded public keys and returns its claims. Does not look at
// the clock (see CheckTimeValidity). Errors (all UNAUTHENTICATED, with a reason a person can act
// on, never echoing the token): too large, malformed, unsupported version, unknown key id,
// signature does not verify, malformed payload.
StatusOr<LicenseClaims> VerifyToken(std::string_view token, std::span<const PublicKey> keys);

// OK when not_before <= now < expires_at; otherwise UNAUTHENTICATED saying which and when.
Status CheckTimeValidity(const LicenseClaims& claims, int64_t now_unix_seconds);

// Payload text <-> claims. ParsePayload rejects missing, duplicate or malformed fields.
StatusOr<LicenseClaims> ParsePayload(std::string_view payload);
std::string SerializePayload(const LicenseClaims& claims);

// Signs claims into a token. Errors: INVALID_ARGUMENT for claims that cannot be encoded
// (newlines, empty required fields, expiry not after not_before), INTERNAL if signing fails.
StatusOr<std::string> IssueToken(const LicenseClaims& claims, const Ed25519Seed& private_key);

// Parses "kid:base64url-public-key" entries separated by ',' or ';' (the build option's form).
StatusOr<std::vector<PublicKey>> ParsePublicKeyList(std::string_view list);
std::string FormatPublicKey(const PublicKey& key);  // "kid:base64url"

std::string Base64UrlEncode(std::span<const uint8_t> bytes);
// Strict: unpadded base64url alphabet only, canonical trailing bits; nullopt otherwise.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// "2026-11-24T20:25:36Z"
std::string FormatUnixTime(int64_t seconds);

}  // namespace an1::license
