// Client-registered shared memory regions (POSIX shared memory), resolved per request.
//
// A region keeps an open descriptor of the client's shared memory object; the server never maps
// it. Tensor bytes are read with pread and results written with pwrite, so a client that
// truncates or removes its object gets an error, never a SIGBUS. Requests hold a lease (a
// shared_ptr) on every region they use: unregistering returns at once, and the descriptor is
// closed when the last request using it finishes. Regions are owned per client id; names are
// per client, and a client can neither see nor unregister another client's regions.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/status.h"

namespace an1::server {

struct SharedMemoryOptions {
  bool enabled = true;  // --no-shared-memory turns it off
  int max_regions_per_client = 64;
  uint64_t max_total_bytes = uint64_t{256} << 30;  // registered bytes, all clients together
};

class Region {
 public:
  Region(std::string name, int fd, uint64_t base, uint64_t byte_size)
      : name_(std::move(name)), fd_(fd), base_(base), byte_size_(byte_size) {}
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  const std::string& name() const { return name_; }
  uint64_t byte_size() const { return byte_size_; }

  // Errors: INVALID_ARGUMENT when [offset, offset + size) is outside the registered range
  // (overflow-safe); FAILED_PRECONDITION when the object was truncated since registration.
  Status CheckRange(uint64_t offset, uint64_t size) const;
  Status Read(uint64_t offset, std::span<std::byte> out) const;
  Status Write(uint64_t offset, std::span<const std::byte> in) const;

 private:
  Status CheckCurrentSize(uint64_t offset, uint64_t size) const;

  std::string name_;
  int fd_;
  uint64_t base_;  // the region's start inside the object
  uint64_t byte_size_;
};

struct RegionInfo {
  std::string name;
  uint64_t byte_size;
};

class RegionRegistry {
 public:
  explicit RegionRegistry(const SharedMemoryOptions& options) : options_(options) {}

  // Errors: FAILED_PRECONDITION when disabled; UNAUTHENTICATED without a client id;
  // INVALID_ARGUMENT for a bad name, key, or range beyond the object's real size;
  // NOT_FOUND when the object does not exist; ALREADY_EXISTS for a name this client uses;
  // RESOURCE_EXHAUSTED beyond the limits. Messages never echo the key.
  Status RegisterSystem(const std::string& client, const std::string& name, const std::string& key,
                        uint64_t offset, uint64_t byte_size);
  // NOT_FOUND when this client has no such region.
  Status Unregister(const std::string& client, const std::string& name);
  int UnregisterAll(const std::string& client);
  std::vector<RegionInfo> List(const std::string& client) const;
  // The region for a request of this client; NOT_FOUND (or FAILED_PRECONDITION when disabled).
  StatusOr<std::shared_ptr<Region>> Lease(const std::string& client, const std::string& name) const;
  // Drops every region (at shutdown); leases still held keep their descriptors until released.
  void Clear();

 private:
  Status CheckEnabled(const std::string& client) const;

  SharedMemoryOptions options_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Region>> regions_;
  uint64_t total_bytes_ = 0;
};

}  // namespace an1::server
