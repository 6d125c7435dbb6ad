#include "engine/license/ed25519.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <memory>

namespace an1::license {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using Bio = std::unique_ptr<BIO, BioDeleter>;

Pkey PrivateKey(const Ed25519Seed& seed) {
  return Pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
}

}  // namespace

bool Ed25519Verify(const Ed25519PublicKey& key, std::string_view message,
                   std::span<const uint8_t> signature) {
  if (signature.size() != 64) return false;
  Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size()));
  MdCtx ctx(EVP_MD_CTX_new());
  if (!pkey || !ctx) return false;
  // Ed25519 is one-shot: no digest is named, the whole message goes to EVP_DigestVerify.
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                          reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

std::optional<Ed25519Signature> Ed25519Sign(const Ed25519Seed& seed, std::string_view message) {
  Pkey pkey = PrivateKey(seed);
  MdCtx ctx(EVP_MD_CTX_new());
  if (!pkey || !ctx) return std::nullopt;
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) {
    return std::nullopt;
  }
  Ed25519Signature signature{};
  size_t length = signature.size();
  if (EVP_DigestSign(ctx.get(), signature.data(), &length,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      length != signature.size()) {
    return std::nullopt;
  }
  return signature;
}

std::optional<Ed25519PublicKey> Ed25519PublicKeyOf(const Ed25519Seed& seed) {
  Pkey pkey = PrivateKey(seed);
  Ed25519PublicKey key{};
  size_t length = key.size();
  if (!pkey || EVP_PKEY_get_raw_public_key(pkey.get(), key.data(), &length) != 1 ||
      length != key.size()) {
    return std::nullopt;
  }
  return key;
}

std::optional<Ed25519Seed> Ed25519GenerateSeed() {
  Ed25519Seed seed{};
  if (RAND_priv_bytes(seed.data(), static_cast<int>(seed.size())) != 1) return std::nullopt;
  return seed;
}

std::optional<std::string> PrivateKeyToPem(const Ed25519Seed& seed) {
  Pkey pkey = PrivateKey(seed);
  Bio bio(BIO_new(BIO_s_mem()));
  if (!pkey || !bio ||
      PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return std::nullopt;
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

std::optional<Ed25519Seed> PrivateKeyFromPem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::nullopt;
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_ED25519) return std::nullopt;
  Ed25519Seed seed{};
  size_t length = seed.size();
  if (EVP_PKEY_get_raw_private_key(pkey.get(), seed.data(), &length) != 1 ||
      length != seed.size()) {
    return std::nullopt;
  }
  return seed;
}

}  // namespace an1::license
