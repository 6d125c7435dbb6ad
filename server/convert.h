// Translation between the wire types (an1.v1 protobuf, grpc::Status) and the engine's types.
//
// This is the one place where engine statuses become gRPC statuses and request messages become
// engine views. Views point into the request message, which must outlive them. Pure functions,
// thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "an1/v1/an1.grpc.pb.h"
#include "engine/engine.h"

namespace an1::server {

// Maps an engine status to the gRPC status sent to the client. INTERNAL errors get a generic
// message (their detail is for the server log only).
grpc::Status ToGrpcStatus(const Status& status);

// Shapes with more dimensions are refused at the edge, before they are copied or formatted.
inline constexpr int kMaxWireRank = 32;

// Reads a request tensor as a view into the message's bytes. `name` ("q", "a", ...) appears in
// error messages. Errors: INVALID_ARGUMENT for a missing tensor, an unknown dtype, too many
// dimensions or no data. For a tensor in a shared region the view's data is left empty: the
// service reads the region.
StatusOr<TensorView> ToTensorView(const char* name, bool present, const v1::Tensor& tensor);

// Errors: INVALID_ARGUMENT for values outside the enum.
StatusOr<BackendKind> ToBackendKind(v1::Backend backend);
v1::Backend ToProtoBackend(BackendKind kind);
v1::DType ToProtoDType(DType dtype);

void FillExecutionInfo(const ExecutionReport& report, v1::ExecutionInfo* info);
void FillServerInfo(const EngineInfo& engine, const std::vector<GpuEnergyReading>& energy,
                    uint64_t max_message_bytes, v1::GetServerInfoResponse* response);

}  // namespace an1::server
