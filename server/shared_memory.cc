#include "server/shared_memory.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace an1::server {
namespace {

constexpr std::size_t kMaxNameBytes = 128;
constexpr std::size_t kMaxKeyBytes = 255;

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= kMaxNameBytes &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::isalnum(c) || c == '.' || c == '_' || c == '-';
         });
}

// A POSIX shared memory key: "/" then 1-254 characters without '/' or NUL.
bool ValidKey(const std::string& key) {
  return key.size() >= 2 && key.size() <= kMaxKeyBytes && key[0] == '/' &&
         key.find('/', 1) == std::string::npos && key.find('\0') == std::string::npos &&
         key != "/." && key != "/..";
}

}  // namespace

Region::~Region() {
  if (fd_ >= 0) close(fd_);
}

Status Region::CheckRange(uint64_t offset, uint64_t size) const {
  // Overflow-safe: size > byte_size - offset, never offset + size > byte_size.
  if (offset > byte_size_ || size > byte_size_ - offset) {
    return InvalidArgumentError("bytes [" + std::to_string(offset) + ", +" + std::to_string(size) +
                                ") are outside region '" + name_ + "' of " +
                                std::to_string(byte_size_) + " bytes");
  }
  if (memory_) return OkStatus();  // a CUDA allocation cannot shrink while it is open
  return CheckCurrentSize(offset, size);
}

Status Region::CheckCurrentSize(uint64_t offset, uint64_t size) const {
  struct stat st {};
  if (fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) < base_ + offset + size) {
    return FailedPreconditionError("region '" + name_ +
                                   "' is smaller than when it was registered (truncated?)");
  }
  return OkStatus();
}

Status Region::ReadPiece(uint64_t offset, std::span<std::byte> out) const {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(base_ + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // the object shrank while we read: an error, never a SIGBUS
      return FailedPreconditionError("region '" + name_ + "' could not be read (truncated?)");
    }
    done += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

Status Region::Read(uint64_t offset, std::span<std::byte> out) const {
  AN1_RETURN_IF_ERROR(CheckRange(offset, out.size()));
  // Large tensors are read by a few threads at once: one thread copies at a fraction of what
  // the host's memory bandwidth allows.
  constexpr std::size_t kPiece = std::size_t{32} << 20;
  constexpr std::size_t kMaxThreads = 4;
  const std::size_t pieces = (out.size() + kPiece - 1) / kPiece;
  if (pieces <= 1) return ReadPiece(offset, out);
  const std::size_t threads = std::min(kMaxThreads, pieces);
  std::vector<Status> results(threads);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (std::size_t p = t; p < pieces && results[t].ok(); p += threads) {
        const std::size_t begin = p * kPiece, size = std::min(kPiece, out.size() - begin);
        results[t] = ReadPiece(offset + begin, out.subspan(begin, size));
      }
    });
  }
  for (std::thread& w : workers) w.join();
  for (const Status& s : results) AN1_RETURN_IF_ERROR(s);
  return OkStatus();
}

Status Region::Write(uint64_t offset, std::span<const std::byte> in) const {
  AN1_RETURN_IF_ERROR(CheckWritable());
  AN1_RETURN_IF_ERROR(CheckRange(offset, in.size()));
  std::size_t done = 0;
  while (done < in.size()) {
    const ssize_t n =
        pwrite(fd_, in.data() + done, in.size() - done, static_cast<off_t>(base_ + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return FailedPreconditionError("region '" + name_ + "' could not be written");
    }
    done += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

Status RegionRegistry::CheckEnabled(const std::string& client) const {
  if (!options_.enabled) {
    return FailedPreconditionError("shared memory is disabled on this server; send tensors inline");
  }
  if (client.empty()) {
    return {StatusCode::kUnauthenticated,
            "shared memory needs an 'an1-client-id' request metadata entry"};
  }
  return OkStatus();
}

Status RegionRegistry::CheckName(const std::string& name) const {
  if (!ValidName(name)) {
    return InvalidArgumentError("region names are 1-128 characters of [A-Za-z0-9._-]");
  }
  if (name.rfind("an1", 0) == 0) {
    return InvalidArgumentError("region names starting with 'an1' are reserved");
  }
  return OkStatus();
}

void RegionRegistry::TouchAndExpire(const std::string& client) const {
  const auto now = std::chrono::steady_clock::now();
  last_seen_[client] = now;
  if (options_.idle_expiry_seconds <= 0 || now < next_sweep_) return;
  // Leases run on every region tensor of every request: sweep at most once a second.
  next_sweep_ = now + std::chrono::seconds(1);
  const auto limit = std::chrono::seconds(options_.idle_expiry_seconds);
  for (auto seen = last_seen_.begin(); seen != last_seen_.end();) {
    if (now - seen->second <= limit) {
      ++seen;
      continue;
    }
    int released = 0;
    for (auto it = regions_.lower_bound({seen->first, ""});
         it != regions_.end() && it->first.first == seen->first;) {
      total_bytes_ -= it->second->byte_size();
      it = regions_.erase(it);  // requests still using it keep their lease
      ++released;
    }
    if (released > 0) {
      spdlog::info("released {} shared memory region(s) of a client idle for over {} s", released,
                   options_.idle_expiry_seconds);
    }
    seen = last_seen_.erase(seen);
  }
}

Status RegionRegistry::Insert(const std::string& client, std::shared_ptr<Region> region) {
  std::lock_guard lock(mutex_);
  TouchAndExpire(client);
  const auto id = std::make_pair(client, region->name());
  if (regions_.count(id)) {
    return AlreadyExistsError("region '" + region->name() + "' is already registered");
  }
  const auto own = std::count_if(regions_.begin(), regions_.end(),
                                 [&](const auto& entry) { return entry.first.first == client; });
  if (regions_.size() >= static_cast<std::size_t>(options_.max_regions_total)) {
    return ResourceExhaustedError("the server holds " + std::to_string(regions_.size()) +
                                  " regions of all clients, its limit (--max-regions)");
  }
  if (own >= options_.max_regions_per_client) {
    return ResourceExhaustedError("this client already has " + std::to_string(own) +
                                  " regions, the server's limit");
  }
  if (region->byte_size() >
      options_.max_total_bytes - std::min(total_bytes_, options_.max_total_bytes)) {
    return ResourceExhaustedError("the server's limit of registered shared memory bytes (" +
                                  std::to_string(options_.max_total_bytes) + ") is reached");
  }
  total_bytes_ += region->byte_size();
  regions_.emplace(id, std::move(region));
  return OkStatus();
}

Status Region::CheckWritable() const {
  if (writable_) return OkStatus();
  return {StatusCode::kPermissionDenied,
          "region '" + name_ +
              "' was registered from a read-only descriptor: outputs cannot be written into it"};
}

Status RegionRegistry::RegisterSystem(const std::string& client, const std::string& name,
                                      UniqueFd fd, uint64_t offset, uint64_t byte_size) {
  AN1_RETURN_IF_ERROR(CheckEnabled(client));
  AN1_RETURN_IF_ERROR(CheckName(name));
  if (byte_size == 0) return InvalidArgumentError("byte_size must be at least 1");
  if (offset > UINT64_MAX - byte_size) {
    return InvalidArgumentError("offset + byte_size overflows");
  }
  const int flags = fcntl(fd.get(), F_GETFL);
  struct stat st {};
  if (flags < 0 || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return InvalidArgumentError("the shared memory object cannot be inspected");
  }
  if ((flags & O_ACCMODE) != O_RDONLY && (flags & O_ACCMODE) != O_RDWR) {
    return InvalidArgumentError("the shared memory descriptor must be readable");
  }
  if (static_cast<uint64_t>(st.st_size) < offset + byte_size) {
    return InvalidArgumentError("offset + byte_size (" + std::to_string(offset + byte_size) +
                                ") is beyond the object's size (" + std::to_string(st.st_size) +
                                " bytes)");
  }
  const bool writable = (flags & O_ACCMODE) == O_RDWR;
  return Insert(client, std::make_shared<Region>(name, fd.release(), writable, offset, byte_size));
}

Status RegionRegistry::RegisterSystemByKey(const std::string& client, const std::string& name,
                                           const std::string& key, uint64_t offset,
                                           uint64_t byte_size) {
  AN1_RETURN_IF_ERROR(CheckEnabled(client));
  if (!options_.allow_open_by_name) {
    return {StatusCode::kPermissionDenied,
            "registering shared memory by key alone is refused (the server would open it with "
            "its own rights): open the object yourself, pass the descriptor over the server's "
            "shared memory socket (GetServerInfo shm_socket) and send the ticket you get back"};
  }
  AN1_RETURN_IF_ERROR(CheckName(name));
  if (!ValidKey(key)) {
    return InvalidArgumentError(
        "the shared memory key must be '/' followed by up to 254 "
        "characters without '/'");
  }
  const int fd = shm_open(key.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return NotFoundError("no shared memory object has that key");
    return InvalidArgumentError(std::string("the shared memory object cannot be opened: ") +
                                std::strerror(error));
  }
  return RegisterSystem(client, name, UniqueFd(fd), offset, byte_size);
}

Status RegionRegistry::RegisterCuda(const std::string& client, const std::string& name,
                                    const std::string& handle, int device, uint64_t byte_size) {
  AN1_RETURN_IF_ERROR(CheckEnabled(client));
  AN1_RETURN_IF_ERROR(CheckName(name));
  if (byte_size == 0) return InvalidArgumentError("byte_size must be at least 1");
  if (device < 0) return InvalidArgumentError("device_id must be >= 0");
  {
    std::lock_guard lock(mutex_);  // refuse a duplicate before opening the handle
    if (regions_.count({client, name})) {
      return AlreadyExistsError("region '" + name + "' is already registered");
    }
  }
  StatusOr<std::shared_ptr<IpcMemory>> memory = engine_->OpenCudaIpcMemory(device, handle);
  if (!memory.ok()) return memory.status();
  if ((*memory)->byte_size() < byte_size) {
    return InvalidArgumentError("byte_size (" + std::to_string(byte_size) +
                                ") is larger than the exported allocation (" +
                                std::to_string((*memory)->byte_size()) + " bytes)");
  }
  return Insert(client, std::make_shared<Region>(name, std::move(memory).value(), byte_size));
}

Status RegionRegistry::Unregister(const std::string& client, const std::string& name) {
  AN1_RETURN_IF_ERROR(CheckEnabled(client));
  std::lock_guard lock(mutex_);
  TouchAndExpire(client);
  const auto it = regions_.find({client, name});
  if (it == regions_.end()) return NotFoundError("no region '" + name + "' is registered");
  total_bytes_ -= it->second->byte_size();
  regions_.erase(it);  // requests still using it keep their lease
  return OkStatus();
}

int RegionRegistry::UnregisterAll(const std::string& client) {
  std::lock_guard lock(mutex_);
  TouchAndExpire(client);
  int removed = 0;
  for (auto it = regions_.begin(); it != regions_.end();) {
    if (it->first.first == client) {
      total_bytes_ -= it->second->byte_size();
      it = regions_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

std::vector<RegionInfo> RegionRegistry::List(const std::string& client) const {
  std::lock_guard lock(mutex_);
  TouchAndExpire(client);
  std::vector<RegionInfo> out;
  for (const auto& [id, region] : regions_) {
    if (id.first == client) {
      out.push_back(
          {region->name(), region->device() >= 0 ? "cuda" : "system", region->byte_size()});
    }
  }
  return out;
}

StatusOr<std::shared_ptr<Region>> RegionRegistry::Lease(const std::string& client,
                                                        const std::string& name) const {
  AN1_RETURN_IF_ERROR(CheckEnabled(client));
  std::lock_guard lock(mutex_);
  TouchAndExpire(client);
  const auto it = regions_.find({client, name});
  if (it == regions_.end()) return NotFoundError("no region '" + name + "' is registered");
  return it->second;
}

void RegionRegistry::Clear() {
  std::lock_guard lock(mutex_);
  regions_.clear();
  last_seen_.clear();
  total_bytes_ = 0;
}

}  // namespace an1::server
