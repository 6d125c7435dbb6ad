// Client-registered shared memory regions (POSIX shared memory), resolved per request.
//
// A region keeps an open descriptor of the client's shared memory object, one the client opened
// and passed over the shared memory socket (shm_socket.h), so the server reaches only what the
// client itself could, with the access it opened it with; the server never maps it. Tensor bytes
// are read with pread and results written with pwrite, so a client that truncates or removes its
// object gets an error, never a SIGBUS. Requests hold a lease (a shared_ptr) on every region they
// use: unregistering returns at once, and the descriptor is closed when the last request using it
// finishes. Regions are owned per client id; names are per client, and a client can neither see nor
// unregister another client's regions. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/status.h"
#include "server/descriptor_tickets.h"

namespace an1::server {

struct SharedMemoryOptions {
  bool enabled = true;  // --no-shared-memory turns it off
  int max_regions_per_client = 64;
  // Regions of all clients together: each system shared memory region holds a descriptor, so
  // this bounds the descriptors clients can make the server keep open (with ids chosen freely,
  // a per-client limit alone does not). Keep it well under the process's RLIMIT_NOFILE.
  int max_regions_total = 256;
  uint64_t max_total_bytes = uint64_t{256} << 30;  // registered bytes, all clients together
  // A client (an owner of regions) not seen for this long is gone: its regions are released at
  // the next registry operation of anyone. 0: never.
  int idle_expiry_seconds = 3600;
  // Let RegisterSystemSharedMemory open an object by its key with the server's own rights (the
  // pre-descriptor behaviour): a caller can then reach any object the server's user can. Off:
  // only descriptors the caller passed (--allow-shm-open-by-name turns it on).
  bool allow_open_by_name = false;
  // The Unix socket clients pass descriptors on; empty: DefaultShmSocketPath().
  std::string socket_path;
};

class Region {
 public:
  // System shared memory: reads and writes go through `fd`, from `base` on.
  // `writable`: the descriptor was opened read-write (else outputs into it are refused).
  Region(std::string name, int fd, bool writable, uint64_t base, uint64_t byte_size)
      : name_(std::move(name)), fd_(fd), writable_(writable), base_(base), byte_size_(byte_size) {}
  // CUDA IPC memory: the engine uses it in place on its GPU.
  Region(std::string name, std::shared_ptr<IpcMemory> memory, uint64_t byte_size)
      : name_(std::move(name)), memory_(std::move(memory)), byte_size_(byte_size) {}
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  const std::string& name() const { return name_; }
  uint64_t byte_size() const { return byte_size_; }
  // False for system shared memory passed as a read-only descriptor.
  bool writable() const { return writable_; }
  // PERMISSION_DENIED, naming the region, when it is read-only.
  Status CheckWritable() const;
  // -1 for system shared memory; the GPU for CUDA IPC memory.
  int device() const { return memory_ ? memory_->device() : -1; }
  // CUDA IPC memory only: the device address of `offset` (after CheckRange).
  std::byte* device_data(uint64_t offset) const { return memory_->data() + offset; }

  // Errors: INVALID_ARGUMENT when [offset, offset + size) is outside the registered range
  // (overflow-safe); FAILED_PRECONDITION when the object was truncated since registration.
  Status CheckRange(uint64_t offset, uint64_t size) const;
  Status Read(uint64_t offset, std::span<std::byte> out) const;
  Status Write(uint64_t offset, std::span<const std::byte> in) const;

 private:
  Status CheckCurrentSize(uint64_t offset, uint64_t size) const;
  Status ReadPiece(uint64_t offset, std::span<std::byte> out) const;

  std::string name_;
  int fd_ = -1;
  bool writable_ = true;
  uint64_t base_ = 0;  // the region's start inside the object
  std::shared_ptr<IpcMemory> memory_;
  uint64_t byte_size_;
};

struct RegionInfo {
  std::string name;
  std::string kind;  // "system" or "cuda"
  uint64_t byte_size;
};

class RegionRegistry {
 public:
  // `engine` (not owned) opens CUDA IPC handles.
  RegionRegistry(const SharedMemoryOptions& options, Engine* engine)
      : options_(options), engine_(engine) {}

  // System shared memory from a descriptor the client passed (DescriptorTickets): read-only
  // when it was opened O_RDONLY. Errors: FAILED_PRECONDITION when disabled; UNAUTHENTICATED
  // without a client id; INVALID_ARGUMENT for a bad name or a range beyond the object's real
  // size; ALREADY_EXISTS for a name this client uses; RESOURCE_EXHAUSTED beyond the limits.
  Status RegisterSystem(const std::string& client, const std::string& name, UniqueFd fd,
                        uint64_t offset, uint64_t byte_size);
  // Opens the object by `key` with the server's rights: PERMISSION_DENIED unless
  // allow_open_by_name; then errors as RegisterSystem, INVALID_ARGUMENT for a bad key, NOT_FOUND
  // when the object does not exist. Messages never echo the key.
  Status RegisterSystemByKey(const std::string& client, const std::string& name,
                             const std::string& key, uint64_t offset, uint64_t byte_size);
  // CUDA IPC memory: `handle` is the raw cudaIpcMemHandle_t of an allocation on GPU `device`.
  // Errors as RegisterSystem, and FAILED_PRECONDITION when this server has no such GPU;
  // INVALID_ARGUMENT when the handle cannot be opened or the allocation is smaller than
  // byte_size. Messages never echo the handle.
  Status RegisterCuda(const std::string& client, const std::string& name, const std::string& handle,
                      int device, uint64_t byte_size);
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
  Status CheckName(const std::string& name) const;
  Status Insert(const std::string& client, std::shared_ptr<Region> region);
  // Under mutex_: marks `client` seen now and releases the regions of clients idle too long.
  void TouchAndExpire(const std::string& client) const;

  SharedMemoryOptions options_;
  Engine* engine_;
  mutable std::mutex mutex_;
  // Mutable: a lookup (Lease, List) also counts as the client being seen, and expires others.
  mutable std::map<std::pair<std::string, std::string>, std::shared_ptr<Region>> regions_;
  mutable std::map<std::string, std::chrono::steady_clock::time_point> last_seen_;
  mutable std::chrono::steady_clock::time_point next_sweep_{};  // the next expiry sweep
  mutable uint64_t total_bytes_ = 0;
};

}  // namespace an1::server
