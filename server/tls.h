// TLS and mutual TLS on the gRPC port (gRPC's own SSL credentials; docs/security.md). Without any
// of the files the port is plaintext.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "engine/status.h"

namespace an1::server {

struct TlsOptions {
  std::string cert_file;       // PEM certificate chain of the server
  std::string key_file;        // PEM private key of that certificate
  std::string client_ca_file;  // PEM CA bundle: mTLS, every client must present a certificate
                               // it signed
  bool enabled() const {
    return !cert_file.empty() || !key_file.empty() || !client_ca_file.empty();
  }
};

// Plaintext credentials without TLS options; otherwise TLS (and mTLS with a client CA) from the
// files. INVALID_ARGUMENT when a certificate comes without its key (or the reverse), a client CA
// without a certificate, or a file cannot be read or is empty.
StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsOptions& tls);

// The whole of a small file (a PEM file); INVALID_ARGUMENT naming `what` when it cannot be read
// or is empty.
StatusOr<std::string> ReadPemFile(const std::string& path, const char* what);

}  // namespace an1::server
