#include "engine/license/token.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <map>
#include <optional>

namespace an1::license {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMaxKeyIdBytes = 64;

Status Unauthenticated(std::string reason) {
  return {StatusCode::kUnauthenticated, std::move(reason)};
}

bool IsKeyIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool ValidKeyId(std::string_view id) {
  return !id.empty() && id.size() <= kMaxKeyIdBytes &&
         std::all_of(id.begin(), id.end(), IsKeyIdChar);
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == separator) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> items;
  if (text.empty()) return items;
  for (std::string_view item : Split(text, ',')) items.emplace_back(item);
  return items;
}

bool ParseInt64(std::string_view text, int64_t* value) {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

bool LicenseClaims::HasFeature(std::string_view feature) const {
  return std::find(features.begin(), features.end(), feature) != features.end();
}

std::string Base64UrlEncode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    uint32_t group = static_cast<uint32_t>(bytes[i]) << 16;
    if (n > 1) group |= static_cast<uint32_t>(bytes[i + 1]) << 8;
    if (n > 2) group |= bytes[i + 2];
    for (std::size_t c = 0; c < n + 1; ++c) out += kAlphabet[(group >> (18 - 6 * c)) & 63];
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const char* at = std::find(kAlphabet, kAlphabet + 64, c);
    if (at == kAlphabet + 64) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(at - kAlphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  if ((buffer & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical trailing bits
  return out;
}

std::string FormatUnixTime(int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(seconds);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

StatusOr<LicenseClaims> ParsePayload(std::string_view payload) {
  std::map<std::string, std::string, std::less<>> fields;
  for (std::string_view line : Split(payload, '\n')) {
    if (line.empty()) continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Unauthenticated("license payload has a line without 'key=value'");
    }
    if (!fields.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1))).second) {
      return Unauthenticated("license payload repeats the field '" +
                             std::string(line.substr(0, std::min<std::size_t>(eq, 32))) + "'");
    }
  }
  LicenseClaims claims;
  for (const char* required :
       {"id", "licensee", "issued_at", "not_before", "expires_at", "features", "kid"}) {
    if (!fields.count(required)) {
      return Unauthenticated(std::string("license payload lacks the field '") + required + "'");
    }
  }
  claims.license_id = fields["id"];
  claims.licensee = fields["licensee"];
  claims.key_id = fields["kid"];
  if (!ParseInt64(fields["issued_at"], &claims.issued_at) ||
      !ParseInt64(fields["not_before"], &claims.not_before) ||
      !ParseInt64(fields["expires_at"], &claims.expires_at)) {
    return Unauthenticated("license payload has a malformed timestamp");
  }
  claims.features = SplitList(fields["features"]);
  claims.gpu_uuids = SplitList(fields.count("gpu_uuids") ? fields["gpu_uuids"] : "");
  int64_t max_gpus = 0;
  if (fields.count("max_gpus") &&
      (!ParseInt64(fields["max_gpus"], &max_gpus) || max_gpus < 0 || max_gpus > 1 << 20)) {
    return Unauthenticated("license payload has a malformed max_gpus");
  }
  claims.max_gpus = static_cast<int>(max_gpus);
  return claims;
}

std::string SerializePayload(const LicenseClaims& c) {
  std::string out = "id=" + c.license_id + "\nlicensee=" + c.licensee +
                    "\nissued_at=" + std::to_string(c.issued_at) +
                    "\nnot_before=" + std::to_string(c.not_before) +
                    "\nexpires_at=" + std::to_string(c.expires_at) +
                    "\nfeatures=" + Join(c.features);
  if (c.max_gpus > 0) out += "\nmax_gpus=" + std::to_string(c.max_gpus);
  if (!c.gpu_uuids.empty()) out += "\ngpu_uuids=" + Join(c.gpu_uuids);
  return out + "\nkid=" + c.key_id + "\n";
}

StatusOr<LicenseClaims> VerifyToken(std::string_view token, std::span<const PublicKey> keys) {
  if (token.size() > kMaxTokenBytes) {
    return Unauthenticated("license token is larger than " + std::to_string(kMaxTokenBytes) +
                           " bytes");
  }
  // Surrounding whitespace (a trailing newline in a file) is not part of the token.
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
    token.remove_suffix(1);
  }
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) {
    token.remove_prefix(1);
  }
  const std::vector<std::string_view> parts = Split(token, '.');
  if (parts.size() != 5 || parts[0] != kTokenPrefix) {
    return Unauthenticated(
        "license token is malformed (expected an1lic.v1.<key id>.<payload>."
        "<signature>)");
  }
  if (parts[1] != kTokenVersion) {
    return Unauthenticated("license token version is not supported by this build (it reads " +
                           std::string(kTokenVersion) + ")");
  }
  if (!ValidKeyId(parts[2])) return Unauthenticated("license token has a malformed key id");
  const auto key = std::find_if(keys.begin(), keys.end(),
                                [&](const PublicKey& k) { return k.key_id == parts[2]; });
  if (key == keys.end()) {
    return Unauthenticated("license is signed with key '" + std::string(parts[2]) +
                           "', which this build does not trust");
  }
  const std::optional<std::string> signature = Base64UrlDecode(parts[4]);
  if (!signature || signature->size() != 64) {
    return Unauthenticated("license token is malformed (bad signature encoding)");
  }
  const std::string_view signed_part = token.substr(0, token.size() - parts[4].size() - 1);
  if (!Ed25519Verify(key->bytes, signed_part,
                     std::span(reinterpret_cast<const uint8_t*>(signature->data()), 64))) {
    return Unauthenticated(
        "license signature does not verify (the token was altered, or signed "
        "by another key)");
  }
  // Only signed bytes are parsed from here on.
  const std::optional<std::string> payload = Base64UrlDecode(parts[3]);
  if (!payload) return Unauthenticated("license token is malformed (bad payload encoding)");
  StatusOr<LicenseClaims> claims = ParsePayload(*payload);
  if (!claims.ok()) return claims;
  if (claims->key_id != parts[2]) {
    return Unauthenticated("license payload names another key id than its token");
  }
  return claims;
}

Status CheckTimeValidity(const LicenseClaims& claims, int64_t now) {
  if (now < claims.not_before) {
    return Unauthenticated("license is not valid before " + FormatUnixTime(claims.not_before));
  }
  if (now >= claims.expires_at) {
    return Unauthenticated("license expired at " + FormatUnixTime(claims.expires_at));
  }
  return OkStatus();
}

StatusOr<std::string> IssueToken(const LicenseClaims& claims, const Ed25519Seed& private_key) {
  const std::vector<const std::string*> texts = {&claims.license_id, &claims.licensee,
                                                 &claims.key_id};
  for (const std::string* text : texts) {
    if (text->empty() || text->find('\n') != std::string::npos) {
      return InvalidArgumentError("license id, licensee and key id must be non-empty single lines");
    }
  }
  if (!ValidKeyId(claims.key_id)) {
    return InvalidArgumentError("key id must be 1-64 characters of [A-Za-z0-9_-]");
  }
  for (const auto* list : {&claims.features, &claims.gpu_uuids}) {
    for (const std::string& item : *list) {
      if (item.empty() || item.find_first_of(",\n") != std::string::npos) {
        return InvalidArgumentError(
            "features and GPU UUIDs must be non-empty, without ',' or "
            "newlines");
      }
    }
  }
  if (claims.expires_at <= claims.not_before) {
    return InvalidArgumentError("expires_at must be after not_before");
  }
  const std::string payload = SerializePayload(claims);
  std::string token =
      std::string(kTokenPrefix) + "." + std::string(kTokenVersion) + "." + claims.key_id + "." +
      Base64UrlEncode(std::span(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  const std::optional<Ed25519Signature> signature = Ed25519Sign(private_key, token);
  if (!signature) return InternalError("Ed25519 signing failed");
  token += "." + Base64UrlEncode(*signature);
  if (token.size() > kMaxTokenBytes) {
    return InvalidArgumentError("the token would exceed " + std::to_string(kMaxTokenBytes) +
                                " bytes; shorten the licensee or the GPU list");
  }
  return token;
}

StatusOr<std::vector<PublicKey>> ParsePublicKeyList(std::string_view list) {
  std::vector<PublicKey> keys;
  for (std::string_view entry : Split(list, list.find(';') != std::string_view::npos ? ';' : ',')) {
    if (entry.empty()) continue;
    const std::size_t colon = entry.find(':');
    if (colon == std::string_view::npos || !ValidKeyId(entry.substr(0, colon))) {
      return InvalidArgumentError("public key entries look like kid:base64url-key");
    }
    const std::optional<std::string> bytes = Base64UrlDecode(entry.substr(colon + 1));
    if (!bytes || bytes->size() != 32) {
      return InvalidArgumentError("public key '" + std::string(entry.substr(0, colon)) +
                                  "' is not 32 bytes of base64url");
    }
    PublicKey key;
    key.key_id = std::string(entry.substr(0, colon));
    std::copy(bytes->begin(), bytes->end(), key.bytes.begin());
    keys.push_back(std::move(key));
  }
  return keys;
}

std::string FormatPublicKey(const PublicKey& key) {
  return key.key_id + ":" + Base64UrlEncode(key.bytes);
}

}  // namespace an1::license
