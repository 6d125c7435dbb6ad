#include "server/convert.h"

#include <string>

#include "server/version.h"

namespace an1::server {

grpc::Status ToGrpcStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kCancelled:
      return {grpc::StatusCode::CANCELLED, status.message()};
    case StatusCode::kInvalidArgument:
      return {grpc::StatusCode::INVALID_ARGUMENT, status.message()};
    case StatusCode::kDeadlineExceeded:
      return {grpc::StatusCode::DEADLINE_EXCEEDED, status.message()};
    case StatusCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, status.message()};
    case StatusCode::kAlreadyExists:
      return {grpc::StatusCode::ALREADY_EXISTS, status.message()};
    case StatusCode::kResourceExhausted:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, status.message()};
    case StatusCode::kFailedPrecondition:
      return {grpc::StatusCode::FAILED_PRECONDITION, status.message()};
    case StatusCode::kUnimplemented:
      return {grpc::StatusCode::UNIMPLEMENTED, status.message()};
    case StatusCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, status.message()};
    case StatusCode::kUnauthenticated:
      return {grpc::StatusCode::UNAUTHENTICATED, status.message()};
    case StatusCode::kPermissionDenied:
      return {grpc::StatusCode::PERMISSION_DENIED, status.message()};
    case StatusCode::kInternal:
      break;
  }
  return {grpc::StatusCode::INTERNAL, "internal error; see the server log"};
}

StatusOr<TensorView> ToTensorView(const char* name, bool present, const v1::Tensor& tensor) {
  const std::string n = name;
  if (!present) return InvalidArgumentError("tensor " + n + " is missing");
  TensorView view;
  switch (tensor.dtype()) {
    case v1::DTYPE_FP16:
      view.dtype = DType::kFloat16;
      break;
    case v1::DTYPE_BF16:
      view.dtype = DType::kBFloat16;
      break;
    case v1::DTYPE_FP32:
      view.dtype = DType::kFloat32;
      break;
    case v1::DTYPE_INT32:
      view.dtype = DType::kInt32;
      break;
    default:
      return InvalidArgumentError(
          n + ".dtype " + std::to_string(tensor.dtype()) +
          " is not supported; use DTYPE_FP16, DTYPE_BF16, DTYPE_FP32 or DTYPE_INT32");
  }
  if (tensor.shape_size() > kMaxWireRank) {
    return InvalidArgumentError(n + " has " + std::to_string(tensor.shape_size()) +
                                " dimensions; at most " + std::to_string(kMaxWireRank) +
                                " are accepted");
  }
  view.shape.assign(tensor.shape().begin(), tensor.shape().end());
  switch (tensor.data_case()) {
    case v1::Tensor::kInlineData: {
      const std::string& bytes = tensor.inline_data();
      view.data = std::span(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
      return view;
    }
    case v1::Tensor::kRegion:
      return view;  // `data` stays empty: the service reads the region (shared_memory.h)
    case v1::Tensor::DATA_NOT_SET:
      break;
  }
  return InvalidArgumentError(n + " has no data: set inline_data or region");
}

StatusOr<BackendKind> ToBackendKind(v1::Backend backend) {
  switch (backend) {
    case v1::BACKEND_AUTO:
      return BackendKind::kAuto;
    case v1::BACKEND_AN1:
      return BackendKind::kAn1;
    case v1::BACKEND_BASELINE:
      return BackendKind::kBaseline;
    default:
      break;
  }
  return InvalidArgumentError("backend " + std::to_string(backend) +
                              " is not one of BACKEND_AUTO, BACKEND_AN1, BACKEND_BASELINE");
}

v1::Backend ToProtoBackend(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto:
      return v1::BACKEND_AUTO;
    case BackendKind::kAn1:
      return v1::BACKEND_AN1;
    case BackendKind::kBaseline:
      return v1::BACKEND_BASELINE;
  }
  return v1::BACKEND_AUTO;
}

v1::DType ToProtoDType(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return v1::DTYPE_FP16;
    case DType::kBFloat16:
      return v1::DTYPE_BF16;
    case DType::kFloat32:
      return v1::DTYPE_FP32;
    case DType::kInt32:
      return v1::DTYPE_INT32;
  }
  return v1::DTYPE_UNSPECIFIED;
}

void FillExecutionInfo(const ExecutionReport& report, v1::ExecutionInfo* info) {
  info->set_backend(ToProtoBackend(report.backend));
  info->set_requested(ToProtoBackend(report.requested));
  info->set_backend_reason(report.reason);
  info->set_device(report.device.ToString());
  info->set_queue_seconds(report.queue_seconds);
  info->set_compute_seconds(report.compute_seconds);
  info->set_copy_seconds(report.copy_seconds);
  info->set_copied_bytes(report.copied_bytes);
  info->set_tokens(report.tokens);
  info->set_kernel(report.kernel);
  if (report.energy_joules) {
    info->set_energy_measured(true);
    info->set_energy_joules(*report.energy_joules);
  }
}

void FillServerInfo(const EngineInfo& engine, const std::vector<GpuEnergyReading>& energy,
                    uint64_t max_message_bytes, v1::GetServerInfoResponse* response) {
  response->set_version(kVersion);
  response->set_build(kBuildDescription);
  response->set_gpu_mode(engine.gpu_mode);
  response->set_mode_reason(engine.mode_reason);
  for (const kernels::GpuDevice& d : engine.devices) {
    v1::DeviceInfo* out = response->add_devices();
    out->set_index(d.index);
    out->set_name(d.name);
    out->set_uuid(d.uuid);
    out->set_compute_capability_major(d.compute_capability_major);
    out->set_compute_capability_minor(d.compute_capability_minor);
    out->set_total_memory_bytes(d.total_memory_bytes);
    out->set_healthy(false);  // until the engine reports it in service below
    for (const DeviceStatus& status : engine.device_status) {
      if (status.device == DeviceId::Cuda(d.index)) {
        out->set_healthy(status.healthy);
        out->set_fault(status.fault);
      }
    }
    for (const GpuEnergyReading& reading : energy) {
      if (reading.device != DeviceId::Cuda(d.index)) continue;
      out->set_energy_available(reading.joules.has_value());
      out->set_energy_joules(reading.joules.value_or(0));
      out->set_power_watts(reading.watts.value_or(0));
      out->set_energy_unavailable_reason(reading.unavailable_reason);
    }
  }
  for (const BackendAvailability& b : engine.backends) {
    v1::BackendInfo* out = response->add_backends();
    out->set_backend(ToProtoBackend(b.kind));
    out->set_available(b.available);
    out->set_reason(b.reason);
  }
  response->set_default_policy(ToProtoBackend(engine.default_policy));
  v1::LicenseInfo* license_info = response->mutable_license();
  license_info->set_valid(engine.license.valid);
  license_info->set_reason(engine.license.reason);
  if (engine.license.claims) {
    const license::LicenseClaims& claims = *engine.license.claims;
    license_info->set_licensee(claims.licensee);
    license_info->set_license_id(claims.license_id);
    license_info->set_expires_at_unix_seconds(claims.expires_at);
    for (const std::string& feature : claims.features) license_info->add_features(feature);
    license_info->set_max_gpus(claims.max_gpus);
  }
  for (int index : engine.an1_licensed_gpus) {
    for (v1::DeviceInfo& device : *response->mutable_devices()) {
      if (device.index() == index) device.set_an1_licensed(true);
    }
  }
  v1::Limits* limits = response->mutable_limits();
  limits->set_max_message_bytes(max_message_bytes);
  limits->set_max_tensor_bytes(engine.limits.max_tensor_bytes);
  limits->set_max_rank(engine.limits.max_rank);
  limits->set_max_queue_depth(engine.max_queue_depth);
}

}  // namespace an1::server
