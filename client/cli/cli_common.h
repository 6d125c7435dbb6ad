// Helpers shared by the an1 CLI's subcommands (an1_main.cc, the bench and power files): error
// reporting, exit statuses, option validators, names, random inputs, and where a request's
// tensors travel.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/cuda_region.h"
#include "client/shared_memory.h"

namespace an1::cli {

namespace v1 = an1::v1;
using an1::client::CallResult;
using an1::client::Client;
using an1::client::HostTensor;

// Exit statuses: 0 success; 1 an error (the server's, or the client host's); 2 bad usage.
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// "INVALID_ARGUMENT", ... for a gRPC status code.
const char* StatusCodeName(int code);
// Prints "error: CODE: message" to stderr; returns 1 (the CLI's exit status for server errors).
int ReportRpcError(const grpc::Status& status);
// Prints "error: message"; returns 2 (bad usage).
int UsageError(const std::string& message);

// Option checks with plain messages ("--seq-len: abc is not a positive number"), where CLI11's
// own print the whole range of a double.
CLI::Validator PositiveNumber();
CLI::Validator NonNegativeNumber();

// Whether `transport` can be used from this host: for "cuda-ipc" the client needs CUDA and GPU
// `device`. Otherwise prints "error: --transport cuda-ipc needs a CUDA GPU on this host: <why>;
// use --transport shm or inline" and returns false. Call before any input is made.
bool CheckTransport(const std::string& transport, int device);

const char* BackendName(v1::Backend b);
const char* DTypeName(v1::DType d);
std::string ShapeString(const std::vector<int64_t>& shape);
double Median(std::vector<double> v);
// `value` with `decimals` digits after the point ("%.*f").
std::string FormatNumber(double value, int decimals = 4);
// The q-quantile (0..1) by nearest rank; 0 for no values.
double Quantile(std::vector<double> v, double q);

// Random tensor with elements uniform in [-1, 1), encoded as `dtype`. Throws
// std::invalid_argument for a shape the client cannot hold in memory.
HostTensor RandomTensor(std::vector<int64_t> shape, v1::DType dtype, std::mt19937_64& rng);

extern const std::map<std::string, v1::DType> kDTypes;
extern const std::map<std::string, v1::Backend> kBackends;

// Where a request's tensors travel: inline in the messages, or one region (POSIX shared memory
// or CUDA IPC memory) holding the inputs and the output. Keeps its region alive.
class Placement {
 public:
  // Moves the inputs into a region for "shm" and "cuda-ipc"; nothing to do for "inline". The
  // region also has `output_bytes` for the output, referred to by *output_region (when not null).
  // Returns false after printing the error.
  bool Place(Client& client, const std::string& transport, int device,
             const std::vector<HostTensor*>& inputs, std::size_t output_bytes,
             std::optional<v1::RegionRef>* output_region);
  // Copies an output the server wrote into the region into `result`, for printing and --out.
  bool FetchOutput(CallResult* result);

 private:
  static bool Fail(const std::string& error);
  std::unique_ptr<an1::client::SharedRegion> shm_;
  std::unique_ptr<an1::client::CudaRegion> cuda_;
};

}  // namespace an1::cli
