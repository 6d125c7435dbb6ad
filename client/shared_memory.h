// A POSIX shared memory region the client creates, fills and registers with the server.
//
// The object's name is removed as soon as it is created; the client passes its descriptor to
// the server (Client::RegisterSystemSharedMemoryFd), so nothing is left in /dev/shm however the
// client ends. The destructor unregisters the region and unmaps it. Not thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "client/client.h"

namespace an1::client {

class SharedRegion {
 public:
  // Creates an object of `bytes` bytes and registers it with `client` under a unique name.
  // Returns null and sets *error on failure (nothing is left behind then either).
  static std::unique_ptr<SharedRegion> Create(Client& client, std::size_t bytes,
                                              std::string* error);
  ~SharedRegion();
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  std::byte* data() { return data_; }
  std::size_t size() const { return bytes_; }
  // A reference to [offset, offset + byte_size) of this region for a request.
  v1::RegionRef Ref(uint64_t offset, uint64_t byte_size) const;

 private:
  SharedRegion(Client& client, std::string name, std::byte* data, std::size_t bytes)
      : client_(client), name_(std::move(name)), data_(data), bytes_(bytes) {}

  Client& client_;
  std::string name_;
  std::byte* data_;
  std::size_t bytes_;
};

}  // namespace an1::client
