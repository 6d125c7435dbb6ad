// A device fault (label `gpu`, its own process: a sticky CUDA error spoils the whole context):
// the GPU is taken out of service, health turns NOT_SERVING through the listener, and requests
// get UNAVAILABLE instead of garbage. Skipped, with the reason, where no GPU is usable.
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "tests/engine_runner.h"

namespace an1 {
namespace {

TEST(GpuFaultTest, StickyErrorTakesTheDeviceOutOfService) {
  const kernels::GpuDiscovery gpus = kernels::DiscoverGpus();
  if (gpus.devices.empty()) GTEST_SKIP() << "no usable GPU: " << gpus.reason;
  if (gpus.devices.size() > 1) GTEST_SKIP() << "written for a host with one GPU";
  auto engine = Engine::Create(EngineOptions{});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::vector<bool> health_changes;
  (*engine)->SetHealthListener([&](bool healthy) { health_changes.push_back(healthy); });

  std::vector<std::byte> x(1 * 2 * 16 * 8 * 2, std::byte{0x3c});
  AttentionInputs in{{DType::kFloat16, {1, 2, 16, 8}, x},
                     {DType::kFloat16, {1, 2, 16, 8}, x},
                     {DType::kFloat16, {1, 2, 16, 8}, x},
                     true,
                     {}};
  std::vector<std::byte> out;
  ASSERT_TRUE(
      testing::RunToCompletion(**engine, (*engine)->PrepareAttention(in, BackendKind::kAuto), &out)
          .status.ok());

  ASSERT_TRUE((*engine)->InjectDeviceFaultForTesting(gpus.devices[0].index).ok());
  EXPECT_FALSE((*engine)->Healthy());
  EXPECT_EQ(health_changes, (std::vector<bool>{true, false}));  // the state at once, the change
  const EngineInfo info = (*engine)->Info();
  ASSERT_EQ(info.device_status.size(), 1u);
  EXPECT_FALSE(info.device_status[0].healthy);
  EXPECT_NE(info.device_status[0].fault.find("cudaErrorIllegalAddress"), std::string::npos)
      << info.device_status[0].fault;

  auto after =
      testing::RunToCompletion(**engine, (*engine)->PrepareAttention(in, BackendKind::kAuto), &out);
  EXPECT_EQ(after.status.code(), StatusCode::kUnavailable) << after.status.ToString();
}

}  // namespace
}  // namespace an1
