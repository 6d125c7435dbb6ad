// DeviceHealth: the health of a device that can fail (a GPU). A sticky device error takes the
// device out of service for good; the CPU has no such state and no DeviceHealth.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <string>

namespace an1 {

class DeviceHealth {
 public:
  virtual ~DeviceHealth() = default;
  // False once a device fault took it out of service.
  virtual bool healthy() const = 0;
  // Why it is out of service; empty while healthy.
  virtual std::string fault() const = 0;
  // Makes the device fault as a real kernel error would: a test hook for the fault paths.
  virtual void InjectFaultForTesting() = 0;
};

}  // namespace an1
