#include "server/tls.h"

#include <grpcpp/security/server_credentials.h>

#include <fstream>
#include <sstream>

namespace an1::server {

StatusOr<std::string> ReadPemFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().empty()) {
    return InvalidArgumentError(std::string("cannot read the ") + what + " " + path);
  }
  return text.str();
}

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsOptions& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return InvalidArgumentError(
        "TLS needs both a certificate and its key (--tls-cert and --tls-key); a client CA "
        "(--tls-client-ca) needs them too");
  }
  StatusOr<std::string> cert = ReadPemFile(tls.cert_file, "TLS certificate");
  if (!cert.ok()) return cert.status();
  StatusOr<std::string> key = ReadPemFile(tls.key_file, "TLS key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!tls.client_ca_file.empty()) {
    StatusOr<std::string> ca = ReadPemFile(tls.client_ca_file, "TLS client CA");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace an1::server
