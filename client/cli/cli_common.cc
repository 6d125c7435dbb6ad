#include "client/cli/cli_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include "client/elements.h"

namespace an1::cli {

const char* StatusCodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
}

int ReportRpcError(const grpc::Status& status) {
  std::cerr << "error: " << StatusCodeName(status.error_code()) << ": " << status.error_message()
            << "\n";
  return 1;
}

int UsageError(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return kExitUsage;
}

namespace {
// A check that the option's text is a finite number above (or at least) zero.
CLI::Validator NumberCheck(bool zero_allowed) {
  const std::string name = zero_allowed ? "NONNEGATIVE" : "POSITIVE";
  return CLI::Validator(
      [zero_allowed](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        const bool parsed = !text.empty() && end == text.c_str() + text.size();
        if (parsed && std::isfinite(value) && (value > 0 || (zero_allowed && value == 0))) {
          return {};
        }
        return text + " is not a " + (zero_allowed ? "non-negative" : "positive") + " number";
      },
      name, name);
}
}  // namespace

CLI::Validator PositiveNumber() { return NumberCheck(false); }
CLI::Validator NonNegativeNumber() { return NumberCheck(true); }

bool CheckTransport(const std::string& transport, int device) {
  if (transport != "cuda-ipc") return true;
  std::string why;
  if (an1::client::CudaRegion::Usable(device, &why)) return true;
  std::cerr << "error: --transport cuda-ipc needs a CUDA GPU on this host: " << why
            << "; use --transport shm or inline\n";
  return false;
}

const char* BackendName(v1::Backend b) {
  switch (b) {
    case v1::BACKEND_AN1:
      return "an1";
    case v1::BACKEND_BASELINE:
      return "baseline";
    default:
      return "auto";
  }
}

const char* DTypeName(v1::DType d) {
  switch (d) {
    case v1::DTYPE_FP16:
      return "fp16";
    case v1::DTYPE_BF16:
      return "bf16";
    case v1::DTYPE_FP32:
      return "fp32";
    default:
      return "unspecified";
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

// Random tensor with elements uniform in [-1, 1), encoded as `dtype`. Throws
// std::invalid_argument for a shape the client cannot hold in memory.
HostTensor RandomTensor(std::vector<int64_t> shape, v1::DType dtype, std::mt19937_64& rng) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 1 || __builtin_mul_overflow(count, d, &count) || count > (int64_t{1} << 33)) {
      throw std::invalid_argument("shape " + ShapeString(shape) +
                                  " is not a positive shape of at most 2^33 elements");
    }
  }
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& x : values) x = uniform(rng);
  return HostTensor{dtype, std::move(shape), an1::client::EncodeElements(values, dtype),
                    std::nullopt};
}

std::string FormatNumber(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(q * static_cast<double>(v.size()));
  return v[static_cast<std::size_t>(std::clamp(rank, 1.0, static_cast<double>(v.size()))) - 1];
}

const std::map<std::string, v1::DType> kDTypes = {
    {"fp16", v1::DTYPE_FP16}, {"bf16", v1::DTYPE_BF16}, {"fp32", v1::DTYPE_FP32}};
const std::map<std::string, v1::Backend> kBackends = {
    {"auto", v1::BACKEND_AUTO}, {"an1", v1::BACKEND_AN1}, {"baseline", v1::BACKEND_BASELINE}};

bool Placement::Place(Client& client, const std::string& transport, int device,
                      const std::vector<HostTensor*>& inputs, std::size_t output_bytes,
                      std::optional<v1::RegionRef>* output_region) {
  if (transport == "inline") return true;
  std::size_t total = output_bytes;
  for (const HostTensor* t : inputs) total += t->bytes.size();
  std::string error;
  if (transport == "shm") {
    shm_ = an1::client::SharedRegion::Create(client, total, &error);
  } else {
    cuda_ = an1::client::CudaRegion::Create(client, device, total, &error);
  }
  if (!shm_ && !cuda_) return Fail(error);
  std::size_t offset = 0;
  for (HostTensor* t : inputs) {
    if (shm_) std::memcpy(shm_->data() + offset, t->bytes.data(), t->bytes.size());
    if (cuda_ && !cuda_->Upload(offset, t->bytes.data(), t->bytes.size(), &error)) {
      return Fail(error);
    }
    t->region = shm_ ? shm_->Ref(offset, t->bytes.size()) : cuda_->Ref(offset, t->bytes.size());
    offset += t->bytes.size();
    t->bytes.clear();
  }
  if (output_region != nullptr) {
    *output_region = shm_ ? shm_->Ref(offset, output_bytes) : cuda_->Ref(offset, output_bytes);
  }
  return true;
}

bool Placement::FetchOutput(CallResult* result) {
  if (!result->output.region) return true;
  const v1::RegionRef& ref = *result->output.region;
  std::size_t bytes = an1::client::WireDTypeSize(result->output.dtype);
  for (int64_t d : result->output.shape) bytes *= static_cast<std::size_t>(d);
  result->output.bytes.resize(bytes);
  if (shm_) {
    std::memcpy(result->output.bytes.data(), shm_->data() + ref.offset(), bytes);
    return true;
  }
  std::string error;
  return cuda_->Download(ref.offset(), result->output.bytes.data(), bytes, &error) || Fail(error);
}

bool Placement::Fail(const std::string& error) {
  std::cerr << "error: " << error << "\n";
  return false;
}

}  // namespace an1::cli
