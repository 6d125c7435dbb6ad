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
  shm_unlink(key.c_str());  // the descriptor is all we need: nothing is left in /dev/shm
  void* data = MAP_FAILED;
  if (ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
    data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  if (data == MAP_FAILED) {
    *error = std::string("cannot size or map shared memory: ") + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  // The server gets its own copy of the descriptor (over the shm socket).
  grpc::Status status = client.RegisterSystemSharedMemoryFd(name, fd, 0, bytes);
  close(fd);
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
