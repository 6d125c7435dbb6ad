// GPU discovery on a GPU host (label `gpu`): skipped, with the reason, where no GPU is usable.
#include "kernels/gpu_devices.h"

#include <gtest/gtest.h>

namespace an1::kernels {
namespace {

TEST(GpuDevicesTest, FindsDevicesWithSaneProperties) {
  if (!BuiltWithCuda()) GTEST_SKIP() << "built without CUDA";
  const GpuDiscovery found = DiscoverGpus();
  if (found.devices.empty()) GTEST_SKIP() << "no usable GPU: " << found.reason;
  for (const GpuDevice& d : found.devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_EQ(d.uuid.rfind("GPU-", 0), 0u) << d.uuid;
    EXPECT_EQ(d.uuid.size(), 40u) << d.uuid;
    EXPECT_GE(d.compute_capability_major, 7);
    EXPECT_GT(d.total_memory_bytes, uint64_t{1} << 30);
  }
}

}  // namespace
}  // namespace an1::kernels
