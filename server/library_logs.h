// Routes the log output of the libraries an1d uses (gRPC core's gpr_log, protobuf's log
// handler) into spdlog's default logger, so that --log-level governs them too: left alone they
// write to stderr on their own, whatever the level (a malformed request made protobuf print a
// line even at --log-level off). Call once, after the default logger is set.
#pragma once

namespace an1::server {

void RouteLibraryLogsToSpdlog();
// Drops their output from then on, before spdlog goes away at exit (gRPC's own threads may still
// log then).
void RestoreLibraryLogs();

}  // namespace an1::server
