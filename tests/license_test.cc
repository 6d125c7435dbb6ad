// License tokens: Ed25519 against RFC 8032, issuing and verifying, every way a token can be
// wrong, key rotation, and the engine's license state (features, GPU binding, expiry at run
// time). No message may contain the token.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "engine/engine.h"
#include "engine/license/ed25519.h"
#include "engine/license/token.h"
#include "engine/license_state.h"

namespace an1::license {
namespace {

std::vector<uint8_t> Hex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

template <typename Array>
Array ToArray(const std::vector<uint8_t>& bytes) {
  Array a{};
  std::copy(bytes.begin(), bytes.end(), a.begin());
  return a;
}

struct Rfc8032Vector {
  const char* secret;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 §7.1, TEST 2 and TEST 3.
const Rfc8032Vector kVectors[] = {
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

TEST(Ed25519Test, Rfc8032Vectors) {
  for (const Rfc8032Vector& v : kVectors) {
    const auto seed = ToArray<Ed25519Seed>(Hex(v.secret));
    const auto expected_public = ToArray<Ed25519PublicKey>(Hex(v.public_key));
    const std::vector<uint8_t> message_bytes = Hex(v.message);
    const std::string message(message_bytes.begin(), message_bytes.end());
    const std::vector<uint8_t> expected_signature = Hex(v.signature);

    EXPECT_EQ(Ed25519PublicKeyOf(seed), expected_public);
    const auto signature = Ed25519Sign(seed, message);
    ASSERT_TRUE(signature.has_value());
    EXPECT_TRUE(std::equal(signature->begin(), signature->end(), expected_signature.begin()));
    EXPECT_TRUE(Ed25519Verify(expected_public, message, expected_signature));
    std::vector<uint8_t> bad = expected_signature;
    bad[10] ^= 1;
    EXPECT_FALSE(Ed25519Verify(expected_public, message, bad));
    EXPECT_FALSE(Ed25519Verify(expected_public, message + "x", expected_signature));
  }
  // TEST 1's public key, derived from its secret key.
  EXPECT_EQ(Ed25519PublicKeyOf(ToArray<Ed25519Seed>(
                Hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))),
            ToArray<Ed25519PublicKey>(
                Hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")));
}

TEST(Ed25519Test, PemRoundTripAndGeneration) {
  const auto seed = Ed25519GenerateSeed();
  ASSERT_TRUE(seed.has_value());
  const auto pem = PrivateKeyToPem(*seed);
  ASSERT_TRUE(pem.has_value());
  EXPECT_NE(pem->find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(PrivateKeyFromPem(*pem), seed);
  EXPECT_FALSE(PrivateKeyFromPem("not a key").has_value());
  EXPECT_NE(Ed25519GenerateSeed(), seed);
}

TEST(Base64UrlTest, RoundTripsAndIsStrict) {
  for (std::size_t n = 0; n < 40; ++n) {
    std::vector<uint8_t> bytes(n);
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 11);
    const std::string text = Base64UrlEncode(bytes);
    EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
    const auto back = Base64UrlDecode(text);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(std::vector<uint8_t>(back->begin(), back->end()), bytes);
  }
  EXPECT_FALSE(Base64UrlDecode("ab+c").has_value());  // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("abc=").has_value());  // padding
  EXPECT_FALSE(Base64UrlDecode("a").has_value());     // impossible length
  EXPECT_FALSE(Base64UrlDecode("AB").has_value());    // non-canonical trailing bits
  EXPECT_TRUE(Base64UrlDecode("AA").has_value());
}

class TokenTest : public ::testing::Test {
 protected:
  static constexpr int64_t kNow = 1795000000;  // 2026-11-18T11:06:40Z

  void SetUp() override {
    seed_ = *Ed25519GenerateSeed();
    other_seed_ = *Ed25519GenerateSeed();
    keys_ = {{"vendor-2026", *Ed25519PublicKeyOf(seed_)}};
    claims_.license_id = "LIC-0042";
    claims_.licensee = "Example Corp, Research = Lab";
    claims_.issued_at = kNow - 100;
    claims_.not_before = kNow - 100;
    claims_.expires_at = kNow + 86400;
    claims_.features = {"an1", "metrics"};
    claims_.key_id = "vendor-2026";
  }

  std::string Issue(const LicenseClaims& claims, const Ed25519Seed& seed) {
    auto token = IssueToken(claims, seed);
    EXPECT_TRUE(token.ok()) << token.status().ToString();
    return token.ok() ? *token : "";
  }

  // Verifies, checks the time, and asserts that the failure message does not leak the token.
  Status Check(const std::string& token, int64_t now = kNow) {
    auto claims = VerifyToken(token, keys_);
    Status status = claims.ok() ? CheckTimeValidity(*claims, now) : claims.status();
    if (token.size() > 16) {
      EXPECT_EQ(status.message().find(token), std::string::npos);
      const std::size_t last_dot = token.rfind('.');
      if (last_dot != std::string::npos && token.size() - last_dot > 8) {
        EXPECT_EQ(status.message().find(token.substr(last_dot + 1)), std::string::npos);
      }
    }
    return status;
  }

  Ed25519Seed seed_{}, other_seed_{};
  std::vector<PublicKey> keys_;
  LicenseClaims claims_;
};

TEST_F(TokenTest, ValidTokenRoundTripsItsClaims) {
  claims_.max_gpus = 2;
  claims_.gpu_uuids = {"GPU-aaaa", "GPU-bbbb"};
  const std::string token = Issue(claims_, seed_);
  EXPECT_EQ(token.rfind("an1lic.v1.vendor-2026.", 0), 0u);
  auto claims = VerifyToken(token, keys_);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ(claims->license_id, "LIC-0042");
  EXPECT_EQ(claims->licensee, "Example Corp, Research = Lab");
  EXPECT_EQ(claims->expires_at, kNow + 86400);
  EXPECT_EQ(claims->features, (std::vector<std::string>{"an1", "metrics"}));
  EXPECT_EQ(claims->max_gpus, 2);
  EXPECT_EQ(claims->gpu_uuids, (std::vector<std::string>{"GPU-aaaa", "GPU-bbbb"}));
  EXPECT_TRUE(Check(token).ok());
  EXPECT_TRUE(Check(token + "\n").ok());  // a trailing newline from a file is fine
}

TEST_F(TokenTest, FlippedBitInPayloadOrSignatureIsRejected) {
  const std::string token = Issue(claims_, seed_);
  const std::size_t payload_at = token.find('.', token.find('.', 7) + 1) + 1 + 10;
  const std::size_t signature_at = token.rfind('.') + 5;
  for (std::size_t at : {payload_at, signature_at}) {
    std::string tampered = token;
    tampered[at] = tampered[at] == 'A' ? 'B' : 'A';  // one bit or more, still base64url
    Status status = Check(tampered);
    EXPECT_EQ(status.code(), StatusCode::kUnauthenticated);
    EXPECT_NE(status.message().find("signature does not verify"), std::string::npos)
        << status.message();
  }
}

TEST_F(TokenTest, TokenFromAnotherKeyIsRejected) {
  Status status = Check(Issue(claims_, other_seed_));  // same key id, different private key
  EXPECT_NE(status.message().find("signature does not verify"), std::string::npos);
}

TEST_F(TokenTest, ExpiredAndNotYetValid) {
  const std::string token = Issue(claims_, seed_);
  Status expired = Check(token, claims_.expires_at);
  EXPECT_EQ(expired.message(), "license expired at 2026-11-19T11:06:40Z");
  Status early = Check(token, claims_.not_before - 1);
  EXPECT_EQ(early.message(), "license is not valid before 2026-11-18T11:05:00Z");
  EXPECT_EQ(FormatUnixTime(0), "1970-01-01T00:00:00Z");
}

TEST_F(TokenTest, MalformedTokensAreRejected) {
  const std::string token = Issue(claims_, seed_);
  EXPECT_NE(Check(token.substr(0, token.size() - 5)).message().find("bad signature encoding"),
            std::string::npos);
  EXPECT_NE(Check(token.substr(0, token.rfind('.'))).message().find("malformed"),
            std::string::npos);
  EXPECT_NE(Check("garbage").message().find("malformed"), std::string::npos);
  EXPECT_NE(Check("").message().find("malformed"), std::string::npos);
  EXPECT_NE(Check(std::string(5000, 'a')).message().find("larger than 4096"), std::string::npos);
  std::string v2 = token;
  v2.replace(7, 2, "v2");
  EXPECT_NE(Check(v2).message().find("version is not supported"), std::string::npos);
  std::string unknown = token;
  unknown.replace(10, 11, "vendor-1999");
  EXPECT_NE(Check(unknown).message().find("'vendor-1999', which this build does not trust"),
            std::string::npos);
}

TEST_F(TokenTest, KeyRotationTrustsEveryListedKey) {
  LicenseClaims old_claims = claims_;
  old_claims.key_id = "vendor-2025";
  keys_.push_back({"vendor-2025", *Ed25519PublicKeyOf(other_seed_)});
  EXPECT_TRUE(Check(Issue(claims_, seed_)).ok());
  EXPECT_TRUE(Check(Issue(old_claims, other_seed_)).ok());
  // A token signed by the 2025 key but claiming the 2026 key id does not verify.
  EXPECT_FALSE(Check(Issue(claims_, other_seed_)).ok());
}

TEST_F(TokenTest, IssueRefusesClaimsItCannotEncode) {
  LicenseClaims bad = claims_;
  bad.licensee = "two\nlines";
  EXPECT_EQ(IssueToken(bad, seed_).status().code(), StatusCode::kInvalidArgument);
  bad = claims_;
  bad.expires_at = bad.not_before;
  EXPECT_EQ(IssueToken(bad, seed_).status().code(), StatusCode::kInvalidArgument);
  bad = claims_;
  bad.features = {"a,b"};
  EXPECT_EQ(IssueToken(bad, seed_).status().code(), StatusCode::kInvalidArgument);
  bad = claims_;
  bad.key_id = "bad id";
  EXPECT_EQ(IssueToken(bad, seed_).status().code(), StatusCode::kInvalidArgument);
}

TEST(PayloadTest, RejectsMissingDuplicateAndMalformedFields) {
  const std::string good =
      "id=1\nlicensee=x\nissued_at=1\nnot_before=1\nexpires_at=2\nfeatures=an1\nkid=k\n";
  EXPECT_TRUE(ParsePayload(good).ok());
  EXPECT_FALSE(ParsePayload("id=1\n").ok());
  EXPECT_FALSE(ParsePayload(good + "id=2\n").ok());
  EXPECT_FALSE(ParsePayload(good + "no equals sign\n").ok());
  EXPECT_FALSE(ParsePayload(good + "max_gpus=-1\n").ok());
  std::string bad_time = good;
  bad_time.replace(bad_time.find("expires_at=2"), 12, "expires_at=2x");
  EXPECT_FALSE(ParsePayload(bad_time).ok());
}

TEST(PublicKeyListTest, ParsesAndFormats) {
  const PublicKey key{"k1", *Ed25519PublicKeyOf(*Ed25519GenerateSeed())};
  const PublicKey key2{"k-2", *Ed25519PublicKeyOf(*Ed25519GenerateSeed())};
  auto keys = ParsePublicKeyList(FormatPublicKey(key) + ";" + FormatPublicKey(key2));
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[1].key_id, "k-2");
  EXPECT_EQ((*keys)[1].bytes, key2.bytes);
  EXPECT_TRUE(ParsePublicKeyList("")->empty());
  EXPECT_FALSE(ParsePublicKeyList("k1:short").ok());
  EXPECT_FALSE(ParsePublicKeyList("nocolon").ok());
}

class LicenseStateTest : public TokenTest {
 protected:
  LicenseOptions Options(const std::string& token) {
    LicenseOptions options;
    options.token = token;
    options.source = "AN1_LICENSE_KEY";
    options.trusted_keys = keys_;
    options.clock = [this] { return now_; };
    return options;
  }
  std::vector<kernels::GpuDevice> Gpus(int n) {
    std::vector<kernels::GpuDevice> gpus(n);
    for (int i = 0; i < n; ++i) {
      gpus[i].index = i;
      gpus[i].uuid = "GPU-" + std::to_string(i);
    }
    return gpus;
  }
  int64_t now_ = kNow;
};

TEST_F(LicenseStateTest, ValidThenExpiresWhileRunning) {
  LicenseState state(Options(Issue(claims_, seed_)), Gpus(0));
  EXPECT_TRUE(state.Current().valid);
  EXPECT_EQ(state.Current().claims->licensee, claims_.licensee);
  now_ = claims_.expires_at + 1;
  const LicenseStatus later = state.Current();
  EXPECT_FALSE(later.valid);
  EXPECT_NE(later.reason.find("expired"), std::string::npos);
}

// A license that expired verified again with the clock set back before its expiry (issue 18).
// The license is checked at the latest time the clock has read (a high-water mark, kept in memory
// and across restarts in the state file), never earlier; a mark set ahead by a wrong clock costs
// nothing while the license is valid then.
TEST_F(LicenseStateTest, AClockSetBackIsNotTrusted) {
  const std::string path = ::testing::TempDir() + "an1-license-clock-" + std::to_string(getpid());
  std::remove(path.c_str());
  LicenseOptions options = Options(Issue(claims_, seed_));
  options.clock_state_path = path;
  now_ = claims_.expires_at + 3600;  // an hour after expiry
  {
    LicenseState state(options, Gpus(0));
    EXPECT_NE(state.Current().reason.find("expired"), std::string::npos);
    now_ = claims_.expires_at - 86400;  // set back a day: was valid again
    const LicenseStatus rolled_back = state.Current();
    EXPECT_FALSE(rolled_back.valid);
    EXPECT_NE(rolled_back.reason.find("the latest time the clock has read"), std::string::npos)
        << rolled_back.reason;
  }
  {  // a restart with the clock still set back: the state file remembers
    LicenseState restarted(options, Gpus(0));
    EXPECT_FALSE(restarted.Current().valid);
    EXPECT_NE(restarted.Current().reason.find(path), std::string::npos);
  }
  std::remove(path.c_str());
  // A clock that ran ahead within the license's validity, then was corrected: still valid.
  now_ = kNow + 7200;
  LicenseOptions fresh = Options(Issue(claims_, seed_));
  LicenseState state(fresh, Gpus(0));
  EXPECT_TRUE(state.Current().valid);
  now_ = kNow;
  EXPECT_TRUE(state.Current().valid);
}

TEST_F(LicenseStateTest, ExplainsMissingTokenKeysAndFeature) {
  EXPECT_NE(LicenseState(Options(""), {}).Current().reason.find("no license key configured"),
            std::string::npos);
  LicenseOptions no_keys = Options(Issue(claims_, seed_));
  no_keys.trusted_keys.clear();
  EXPECT_NE(LicenseState(no_keys, {}).Current().reason.find("trusts no license signing keys"),
            std::string::npos);
  LicenseClaims no_an1 = claims_;
  no_an1.features = {"metrics"};
  EXPECT_NE(LicenseState(Options(Issue(no_an1, seed_)), {}).Current().reason.find("an1 feature"),
            std::string::npos);
  LicenseOptions unreadable = Options("");
  unreadable.load_error = "cannot read the license file /x: No such file or directory";
  EXPECT_EQ(LicenseState(unreadable, {}).Current().reason, unreadable.load_error);
}

TEST_F(LicenseStateTest, GpuBindingAndMaxGpus) {
  claims_.max_gpus = 2;
  EXPECT_EQ(LicenseState(Options(Issue(claims_, seed_)), Gpus(4)).licensed_gpus(),
            (std::vector<int>{0, 1}));
  claims_.max_gpus = 0;
  claims_.gpu_uuids = {"GPU-3", "GPU-1"};
  LicenseState bound(Options(Issue(claims_, seed_)), Gpus(4));
  EXPECT_EQ(bound.licensed_gpus(), (std::vector<int>{1, 3}));
  EXPECT_TRUE(bound.Current().valid);
  claims_.gpu_uuids = {"GPU-elsewhere"};
  LicenseState elsewhere(Options(Issue(claims_, seed_)), Gpus(2));
  EXPECT_FALSE(elsewhere.Current().valid);
  EXPECT_NE(elsewhere.Current().reason.find("bound to other GPUs"), std::string::npos);
}

TEST_F(LicenseStateTest, EngineNamesTheLicenseReasonOrOnlyTheGpu) {
  EngineOptions options;
  options.disable_gpu = true;
  options.license = Options(Issue(claims_, seed_));
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok());
  std::vector<std::byte> bytes(4 * 4);
  AttentionInputs in{{DType::kFloat32, {1, 1, 1, 4}, bytes},
                     {DType::kFloat32, {1, 1, 1, 4}, bytes},
                     {DType::kFloat32, {1, 1, 1, 4}, bytes},
                     true,
                     {}};
  Status valid = (*engine)->PrepareAttention(in, BackendKind::kAn1).status();
  EXPECT_EQ(valid.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(valid.message(),
            "backend an1 is unavailable: no usable GPU (GPU use disabled by "
            "configuration)");
  EXPECT_TRUE((*engine)->Info().license.valid);

  now_ = claims_.expires_at;  // expiry noticed without a restart
  Status expired = (*engine)->PrepareAttention(in, BackendKind::kAn1).status();
  EXPECT_NE(expired.message().find("no valid license: license expired at"), std::string::npos)
      << expired.message();
  EXPECT_FALSE((*engine)->Info().license.valid);
}

}  // namespace
}  // namespace an1::license
