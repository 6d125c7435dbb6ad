// an1-license: the vendor's license tool.
//
//   an1-license keygen --kid vendor-2026 --out vendor-2026.key
//   an1-license issue --key vendor-2026.key --kid vendor-2026 --id LIC-0042 \
//       --licensee "Example Corp" --days 365 --features an1 [--max-gpus 8] [--gpu-uuids ...]
//   an1-license inspect --public-keys vendor-2026:... --token-file license.txt
//
// It never prints a signature or key bytes other than the public key keygen announces.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "engine/license/ed25519.h"
#include "engine/license/token.h"

namespace {

using namespace an1::license;
using an1::Status;
using an1::StatusOr;

int Fail(const std::string& message) {
  std::cerr << "an1-license: " << message << "\n";
  return 1;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Unix seconds, or a UTC date YYYY-MM-DD (midnight).
bool ParseTime(const std::string& text, int64_t* seconds) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%d");
  if (!in.fail() && in.peek() == EOF) {
    *seconds = static_cast<int64_t>(timegm(&tm));
    return true;
  }
  char* end = nullptr;
  *seconds = std::strtoll(text.c_str(), &end, 10);
  return !text.empty() && *end == '\0';
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int Keygen(const std::string& kid, const std::string& out, bool force) {
  const std::optional<Ed25519Seed> seed = Ed25519GenerateSeed();
  const std::optional<std::string> pem = seed ? PrivateKeyToPem(*seed) : std::nullopt;
  const std::optional<Ed25519PublicKey> public_key =
      seed ? Ed25519PublicKeyOf(*seed) : std::nullopt;
  if (!pem || !public_key) return Fail("key generation failed");
  // Created with mode 0600 from the start; never world-readable, even for a moment.
  const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | (force ? 0 : O_EXCL), 0600);
  if (fd < 0) return Fail("cannot create " + out + ": " + std::strerror(errno));
  fchmod(fd, 0600);
  const bool written = write(fd, pem->data(), pem->size()) == static_cast<ssize_t>(pem->size());
  close(fd);
  if (!written) return Fail("cannot write " + out);
  const std::string entry = FormatPublicKey({kid, *public_key});
  std::cout << "private key written to " << out << " (mode 0600); keep it secret\n"
            << "public key: " << entry << "\n"
            << "build an1d trusting it with: cmake -DAN1_LICENSE_PUBLIC_KEYS=\"" << entry
            << "\" ... (append to the existing list to rotate keys)\n";
  return 0;
}

int Issue(const std::string& key_path, LicenseClaims claims, const std::string& not_before,
          const std::string& expires, int days) {
  const std::optional<std::string> pem = ReadFile(key_path);
  if (!pem) return Fail("cannot read " + key_path);
  const std::optional<Ed25519Seed> seed = PrivateKeyFromPem(*pem);
  if (!seed) return Fail(key_path + " is not an Ed25519 private key");
  const int64_t now = NowSeconds();
  claims.issued_at = now;
  claims.not_before = now;
  if (!not_before.empty() && !ParseTime(not_before, &claims.not_before)) {
    return Fail("--not-before: use Unix seconds or YYYY-MM-DD");
  }
  if (!expires.empty()) {
    if (!ParseTime(expires, &claims.expires_at))
      return Fail("--expires: use Unix seconds or YYYY-MM-DD");
  } else {
    claims.expires_at = claims.not_before + int64_t{days} * 86400;
  }
  StatusOr<std::string> token = IssueToken(claims, *seed);
  if (!token.ok()) return Fail(token.status().message());
  std::cout << *token << "\n";
  return 0;
}

void PrintClaims(const LicenseClaims& c) {
  auto join = [](const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
    return out.empty() ? std::string("(none)") : out;
  };
  std::cout << "license id: " << c.license_id << "\nlicensee: " << c.licensee
            << "\nissued at: " << FormatUnixTime(c.issued_at)
            << "\nnot before: " << FormatUnixTime(c.not_before)
            << "\nexpires at: " << FormatUnixTime(c.expires_at)
            << "\nfeatures: " << join(c.features)
            << "\nmax gpus: " << (c.max_gpus ? std::to_string(c.max_gpus) : "no limit")
            << "\ngpu binding: " << join(c.gpu_uuids) << "\nkey id: " << c.key_id << "\n";
}

int Inspect(const std::string& keys_text, const std::string& key_path, std::string token,
            const std::string& token_file) {
  std::vector<PublicKey> keys;
  if (!keys_text.empty()) {
    StatusOr<std::vector<PublicKey>> parsed = ParsePublicKeyList(keys_text);
    if (!parsed.ok()) return Fail(parsed.status().message());
    keys = *parsed;
  }
  if (!token_file.empty()) {
    const std::optional<std::string> text = ReadFile(token_file);
    if (!text) return Fail("cannot read " + token_file);
    token = *text;
  }
  if (token.empty()) return Fail("give --token or --token-file");
  if (!key_path.empty()) {  // the vendor may check against its own private key's public half
    const std::optional<std::string> pem = ReadFile(key_path);
    const std::optional<Ed25519Seed> seed = pem ? PrivateKeyFromPem(*pem) : std::nullopt;
    const std::optional<Ed25519PublicKey> pub = seed ? Ed25519PublicKeyOf(*seed) : std::nullopt;
    if (!pub) return Fail(key_path + " is not an Ed25519 private key");
    const std::size_t first = token.find('.'), second = token.find('.', first + 1),
                      third = token.find('.', second + 1);
    if (third == std::string::npos) return Fail("license token is malformed");
    keys.push_back({token.substr(second + 1, third - second - 1), *pub});
  }
  StatusOr<LicenseClaims> claims = VerifyToken(token, keys);
  if (!claims.ok()) {
    std::cout << "status: invalid: " << claims.status().message() << "\n";
    return 1;
  }
  Status in_time = CheckTimeValidity(*claims, NowSeconds());
  std::cout << "status: " << (in_time.ok() ? "valid" : "invalid: " + in_time.message()) << "\n";
  PrintClaims(*claims);
  return in_time.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"an1-license: AN1 Engine license keys and tokens (vendor tool)"};
  app.require_subcommand(1);

  std::string kid, out, key_path, not_before, expires, keys_text, token, token_file;
  bool force = false;
  int days = 365;
  LicenseClaims claims;
  std::string features = "an1", gpu_uuids;

  CLI::App* keygen = app.add_subcommand("keygen", "Generate a signing key pair");
  keygen->add_option("--kid", kid, "Key id, [A-Za-z0-9_-]{1,64}")->required();
  keygen->add_option("--out", out, "Private key file to create (PEM, mode 0600)")->required();
  keygen->add_flag("--force", force, "Overwrite an existing file");

  CLI::App* issue = app.add_subcommand("issue", "Print a signed license token");
  issue->add_option("--key", key_path, "Private key file from keygen")->required();
  issue->add_option("--kid", claims.key_id, "Key id the key was generated under")->required();
  issue->add_option("--id", claims.license_id, "License id")->required();
  issue->add_option("--licensee", claims.licensee, "Licensee name")->required();
  issue->add_option("--not-before", not_before, "Start: Unix seconds or YYYY-MM-DD (default now)");
  issue->add_option("--expires", expires, "End: Unix seconds or YYYY-MM-DD");
  issue->add_option("--days", days, "Validity in days when --expires is absent")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  issue->add_option("--features", features, "Comma-separated features")->capture_default_str();
  issue->add_option("--max-gpus", claims.max_gpus, "GPUs that may serve an1 (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  issue->add_option("--gpu-uuids", gpu_uuids, "Comma-separated GPU UUIDs to bind to");

  CLI::App* inspect = app.add_subcommand("inspect", "Verify a token and print its fields");
  inspect->add_option("--public-keys", keys_text, "kid:key entries, as in AN1_LICENSE_PUBLIC_KEYS");
  inspect->add_option("--key", key_path, "Or: verify against this private key's public half");
  inspect->add_option("--token", token, "The token");
  inspect->add_option("--token-file", token_file, "A file holding the token");

  CLI11_PARSE(app, argc, argv);
  auto split = [](const std::string& text) {
    std::vector<std::string> items;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
      if (!item.empty()) items.push_back(item);
    }
    return items;
  };
  if (app.got_subcommand(keygen)) return Keygen(kid, out, force);
  if (app.got_subcommand(issue)) {
    claims.features = split(features);
    claims.gpu_uuids = split(gpu_uuids);
    return Issue(key_path, claims, not_before, expires, days);
  }
  return Inspect(keys_text, key_path, token, token_file);
}
