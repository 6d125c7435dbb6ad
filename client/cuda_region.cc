#include "client/cuda_region.h"

#include <unistd.h>

#include <random>

#if AN1_CLIENT_CUDA
#include <cuda_runtime.h>
#endif

namespace an1::client {

#if AN1_CLIENT_CUDA

namespace {
bool Check(cudaError_t error, const char* what, std::string* message) {
  if (error == cudaSuccess) return true;
  *message = std::string(what) + ": " + cudaGetErrorString(error);
  return false;
}
}  // namespace

bool CudaRegion::Usable(int device, std::string* reason) {
  int count = 0;
  if (const cudaError_t error = cudaGetDeviceCount(&count); error != cudaSuccess) {
    // No driver at all reads "CUDA driver version is insufficient for CUDA runtime version".
    *reason = error == cudaErrorInsufficientDriver
                  ? std::string("no NVIDIA driver new enough for this client's CUDA runtime (") +
                        cudaGetErrorString(error) + ")"
                  : std::string(cudaGetErrorString(error));
    return false;
  }
  if (count == 0) {
    *reason = "the CUDA runtime finds no GPU";
    return false;
  }
  if (device < 0 || device >= count) {
    *reason = "there is no GPU " + std::to_string(device) + ": the CUDA runtime finds " +
              std::to_string(count) + ", numbered 0 to " + std::to_string(count - 1);
    return false;
  }
  return true;
}

std::unique_ptr<CudaRegion> CudaRegion::Create(Client& client, int device, std::size_t bytes,
                                               std::string* error) {
  void* data = nullptr;
  cudaIpcMemHandle_t handle{};
  if (!Check(cudaSetDevice(device), "cudaSetDevice", error) ||
      !Check(cudaMalloc(&data, bytes), "cudaMalloc", error)) {
    return nullptr;
  }
  if (!Check(cudaIpcGetMemHandle(&handle, data), "cudaIpcGetMemHandle", error)) {
    cudaFree(data);
    return nullptr;
  }
  std::random_device random;
  const std::string name = "cli-" + std::to_string(getpid()) + "-" + std::to_string(random());
  grpc::Status status = client.RegisterCudaSharedMemory(
      name, std::string(reinterpret_cast<const char*>(&handle), sizeof(handle)), device, bytes);
  if (!status.ok()) {
    cudaFree(data);
    *error = "the server refused the CUDA IPC region: " + status.error_message();
    return nullptr;
  }
  return std::unique_ptr<CudaRegion>(new CudaRegion(client, name, device, data, bytes));
}

CudaRegion::~CudaRegion() {
  (void)client_.UnregisterSharedMemory(name_);
  cudaSetDevice(device_);
  cudaFree(data_);
}

bool CudaRegion::Upload(std::size_t offset, const void* data, std::size_t bytes,
                        std::string* error) {
  return Check(cudaMemcpy(static_cast<char*>(data_) + offset, data, bytes, cudaMemcpyHostToDevice),
               "upload to the CUDA region", error);
}

bool CudaRegion::Download(std::size_t offset, void* data, std::size_t bytes, std::string* error) {
  return Check(
      cudaMemcpy(data, static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost),
      "download from the CUDA region", error);
}

#else  // no CUDA in this build

bool CudaRegion::Usable(int, std::string* reason) {
  *reason = "this client was built without CUDA";
  return false;
}

std::unique_ptr<CudaRegion> CudaRegion::Create(Client&, int, std::size_t, std::string* error) {
  *error = "this client was built without CUDA, so it cannot use --transport cuda-ipc";
  return nullptr;
}
CudaRegion::~CudaRegion() = default;
bool CudaRegion::Upload(std::size_t, const void*, std::size_t, std::string*) { return false; }
bool CudaRegion::Download(std::size_t, void*, std::size_t, std::string*) { return false; }

#endif

v1::RegionRef CudaRegion::Ref(uint64_t offset, uint64_t byte_size) const {
  return MakeRegionRef(name_, offset, byte_size);
}

}  // namespace an1::client
