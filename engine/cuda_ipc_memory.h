// IpcMemory: GPU memory another process exported with CUDA IPC, open in this process while the
// object lives (the server's CUDA shared-memory regions hold one each).
#pragma once

#include <cstddef>
#include <cstdint>

namespace an1 {

class IpcMemory {
 public:
  IpcMemory(int device, std::byte* data, uint64_t bytes)
      : device_(device), data_(data), bytes_(bytes) {}
  ~IpcMemory();  // closes the handle
  IpcMemory(const IpcMemory&) = delete;
  IpcMemory& operator=(const IpcMemory&) = delete;

  int device() const { return device_; }
  std::byte* data() const { return data_; }
  uint64_t byte_size() const { return bytes_; }  // from data() to the allocation's end

 private:
  int device_;
  std::byte* data_;
  uint64_t bytes_;
};

}  // namespace an1
