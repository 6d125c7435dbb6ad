// Ed25519 signatures through OpenSSL 3 (EVP, one-shot), with raw 32-byte keys.
//
// The algorithm is fixed: nothing here accepts an algorithm name from outside. Functions are
// thread-safe and never throw.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace an1::license {

using Ed25519PublicKey = std::array<uint8_t, 32>;
using Ed25519Seed = std::array<uint8_t, 32>;  // the private key (RFC 8032 "secret key")
using Ed25519Signature = std::array<uint8_t, 64>;

// True when `signature` is a valid signature of `message` by `key`.
bool Ed25519Verify(const Ed25519PublicKey& key, std::string_view message,
                   std::span<const uint8_t> signature);
// Signs `message`; nullopt only if OpenSSL fails.
std::optional<Ed25519Signature> Ed25519Sign(const Ed25519Seed& seed, std::string_view message);
// The public key of a private key; nullopt only if OpenSSL fails.
std::optional<Ed25519PublicKey> Ed25519PublicKeyOf(const Ed25519Seed& seed);
// A fresh private key from OpenSSL's CSPRNG.
std::optional<Ed25519Seed> Ed25519GenerateSeed();

// PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), the form `openssl genpkey -algorithm ed25519`
// writes. PrivateKeyFromPem returns nullopt for anything but an Ed25519 private key.
std::optional<std::string> PrivateKeyToPem(const Ed25519Seed& seed);
std::optional<Ed25519Seed> PrivateKeyFromPem(std::string_view pem);

}  // namespace an1::license
