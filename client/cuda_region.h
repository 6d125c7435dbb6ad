// A CUDA allocation the client makes, exports with cudaIpcGetMemHandle and registers with the
// server (--transport cuda-ipc): the server reads inputs from it and writes the output into it
// on the GPU, with no tensor bytes through the host on its side. The destructor unregisters the
// region and frees the memory. In a build without CUDA, Usable and Create report that.
// Not thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "client/client.h"

namespace an1::client {

class CudaRegion {
 public:
  // Whether this process can make a region on GPU `device`: the client was built with CUDA, the
  // CUDA runtime finds a device, and `device` is one of them. Otherwise false with the reason in
  // plain words (the CUDA runtime's own where it gives one, e.g. "no CUDA-capable device is
  // detected"). Touches no server.
  static bool Usable(int device, std::string* reason);
  static std::unique_ptr<CudaRegion> Create(Client& client, int device, std::size_t bytes,
                                            std::string* error);
  ~CudaRegion();
  CudaRegion(const CudaRegion&) = delete;
  CudaRegion& operator=(const CudaRegion&) = delete;

  // Host <-> region copies on the client's side. Return false with *error on failure.
  bool Upload(std::size_t offset, const void* data, std::size_t bytes, std::string* error);
  bool Download(std::size_t offset, void* data, std::size_t bytes, std::string* error);
  v1::RegionRef Ref(uint64_t offset, uint64_t byte_size) const;

 private:
  CudaRegion(Client& client, std::string name, int device, void* data, std::size_t bytes)
      : client_(client), name_(std::move(name)), device_(device), data_(data), bytes_(bytes) {}

  Client& client_;
  std::string name_;
  int device_;
  void* data_;
  std::size_t bytes_;
};

}  // namespace an1::client
