#include "client/cli/info.h"

#include <cstdio>
#include <ctime>
#include <string>

#include "client/cli/cli_common.h"

namespace an1::cli {
namespace {

// "2027-01-01T00:00:00Z"
std::string FormatUtc(int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  char text[32] = "?";
  if (gmtime_r(&t, &tm) != nullptr) std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

int RunInfo(Client& client) {
  v1::GetServerInfoResponse info;
  grpc::Status status = client.Info(&info);
  if (!status.ok()) return ReportRpcError(status);
  std::printf("version: %s (%s)\n", info.version().c_str(), info.build().c_str());
  std::printf("mode: %s%s%s\n", info.gpu_mode() ? "gpu" : "cpu",
              info.mode_reason().empty() ? "" : ": ", info.mode_reason().c_str());
  for (const v1::DeviceInfo& d : info.devices()) {
    std::printf("device %d: %s (sm_%d%d, %llu MiB, %s)%s%s%s\n", d.index(), d.name().c_str(),
                d.compute_capability_major(), d.compute_capability_minor(),
                static_cast<unsigned long long>(d.total_memory_bytes() >> 20), d.uuid().c_str(),
                d.an1_licensed() ? ", licensed for an1" : "",
                d.healthy() ? "" : ", OUT OF SERVICE: ", d.fault().c_str());
    if (d.energy_available()) {
      std::printf("  power: %.1f W, energy since the server started: %.1f J\n", d.power_watts(),
                  d.energy_joules());
    } else {
      std::printf("  power and energy: unavailable (%s)\n", d.energy_unavailable_reason().c_str());
    }
  }
  for (const v1::BackendInfo& b : info.backends()) {
    std::printf("backend %s: %s%s%s\n", BackendName(b.backend()),
                b.available() ? "available" : "unavailable", b.reason().empty() ? "" : ": ",
                b.reason().c_str());
  }
  std::printf("default policy: %s\n", BackendName(info.default_policy()));
  const v1::LicenseInfo& license = info.license();
  std::printf("license: %s%s%s\n", license.valid() ? "valid" : "invalid",
              license.reason().empty() ? "" : ": ", license.reason().c_str());
  if (!license.licensee().empty()) {
    std::string features;
    for (const std::string& f : license.features()) features += (features.empty() ? "" : ",") + f;
    std::printf("  licensee: %s\n  license id: %s\n  expires: %s\n  features: %s\n  max gpus: %s\n",
                license.licensee().c_str(), license.license_id().c_str(),
                FormatUtc(license.expires_at_unix_seconds()).c_str(), features.c_str(),
                license.max_gpus() ? std::to_string(license.max_gpus()).c_str() : "no limit");
  }
  std::printf("limits: max message %llu bytes, max tensor %llu bytes, max rank %u, queue %u\n",
              static_cast<unsigned long long>(info.limits().max_message_bytes()),
              static_cast<unsigned long long>(info.limits().max_tensor_bytes()),
              info.limits().max_rank(), info.limits().max_queue_depth());
  if (!info.grpc_unix_socket().empty()) {
    std::printf("unix socket: unix:%s (this host's clients may use it as --server)\n",
                info.grpc_unix_socket().c_str());
  }
  return 0;
}

}  // namespace an1::cli
