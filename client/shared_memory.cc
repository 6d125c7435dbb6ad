#include "client/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace an1::client {

std::unique_ptr<SharedRegion> SharedRegion::Create(Client& client, std::size_t bytes,
                                                   std::string* error) {
  std::random_device random;
  const std::string name = "cli-" + std::to_string(getpid()) + "-" + std::to_string(random());
  const std::string key = "/" + name;
  const int fd = shm_open(key.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = std::string("cannot create shared memory: ") + std::strerror(errno);
    return nullptr;
  }
  void* data = MAP_FAILED;
  if (ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
    data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  const int saved = errno;
  close(fd);
  if (data == MAP_FAILED) {
    shm_unlink(key.c_str());
    *error = std::string("cannot size or map shared memory: ") + std::strerror(saved);
    return nullptr;
  }
  grpc::Status status = client.RegisterSystemSharedMemory(name, key, 0, bytes);
  shm_unlink(key.c_str());  // the server holds its own descriptor now (or failed to)
  if (!status.ok()) {
    munmap(data, bytes);
    *error = "the server refused the shared memory region: " + status.error_message();
    return nullptr;
  }
  return std::unique_ptr<SharedRegion>(
      new SharedRegion(client, name, static_cast<std::byte*>(data), bytes));
}

SharedRegion::~SharedRegion() {
  (void)client_.UnregisterSharedMemory(name_);  // best effort: the server drops it at exit anyway
  munmap(data_, bytes_);
}

v1::RegionRef SharedRegion::Ref(uint64_t offset, uint64_t byte_size) const {
  return MakeRegionRef(name_, offset, byte_size);
}

}  // namespace an1::client
