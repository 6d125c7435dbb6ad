#include "server/library_logs.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include <string>

namespace an1::server {
namespace {

void GrpcLog(gpr_log_func_args* args) {
  spdlog::level::level_enum level = spdlog::level::debug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = spdlog::level::info;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = spdlog::level::err;
  spdlog::log(level, "grpc: {} ({}:{})", args->message, args->file, args->line);
}

void ProtobufLog(google::protobuf::LogLevel severity, const char* file, int line,
                 const std::string& message) {
  spdlog::level::level_enum level = spdlog::level::info;
  if (severity == google::protobuf::LOGLEVEL_WARNING) level = spdlog::level::warn;
  if (severity >= google::protobuf::LOGLEVEL_ERROR) level = spdlog::level::err;
  spdlog::log(level, "protobuf: {} ({}:{})", message, file, line);
}

}  // namespace

void RouteLibraryLogsToSpdlog() {
  // gRPC filters by its own verbosity before calling the function: open it as far as spdlog's
  // level lets lines through, so --log-level decides.
  const spdlog::level::level_enum level = spdlog::default_logger()->level();
  gpr_set_log_verbosity(level <= spdlog::level::debug  ? GPR_LOG_SEVERITY_DEBUG
                        : level <= spdlog::level::info ? GPR_LOG_SEVERITY_INFO
                                                       : GPR_LOG_SEVERITY_ERROR);
  gpr_set_log_function(GrpcLog);
  google::protobuf::SetLogHandler(ProtobufLog);
}

void RestoreLibraryLogs() {
  gpr_set_log_function([](gpr_log_func_args*) {});  // dropped: spdlog is about to go
  google::protobuf::SetLogHandler(nullptr);         // protobuf: discard
}

}  // namespace an1::server
