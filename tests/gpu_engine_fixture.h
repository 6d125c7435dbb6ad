// A GPU engine for the GPU-labelled engine tests, licensed for the an1 backend by a key made
// here; or, where no GPU is usable, the reason to skip.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "engine/engine.h"
#include "engine/license/ed25519.h"
#include "kernels/gpu_devices.h"

namespace an1::testing {

// Null with `*skip_reason` set when no GPU is usable.
inline std::unique_ptr<Engine> MakeLicensedGpuEngine(std::string* skip_reason) {
  const kernels::GpuDiscovery gpus = kernels::DiscoverGpus();
  if (gpus.devices.empty()) {
    *skip_reason = "no usable GPU: " + gpus.reason;
    return nullptr;
  }
  const license::Ed25519Seed seed = *license::Ed25519GenerateSeed();
  license::LicenseClaims claims;
  claims.license_id = "GPU-TEST";
  claims.licensee = "tests";
  claims.not_before = 0;
  claims.expires_at = int64_t{1} << 40;
  claims.features = {"an1"};
  claims.key_id = "test";
  EngineOptions options;
  options.limits.max_tensor_bytes = std::size_t{4} << 30;
  options.license.token = *license::IssueToken(claims, seed);
  options.license.trusted_keys = {{"test", *license::Ed25519PublicKeyOf(seed)}};
  auto engine = Engine::Create(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  if (!engine.ok()) {
    *skip_reason = engine.status().ToString();
    return nullptr;
  }
  return std::move(engine).value();
}

}  // namespace an1::testing
