// Bearer-token authentication and scopes (docs/security.md). A token file maps the SHA-256 of
// each token (never the token) to a principal and its scopes; a call carries
// `authorization: Bearer TOKEN` metadata. Without a token file every caller is anonymous with
// every scope, and shared memory regions belong to the caller's `an1-client-id`; with one,
// UNAUTHENTICATED without a valid token, PERMISSION_DENIED without the scope, and regions belong
// to the principal. Health (grpc.health.v1) stays open.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "engine/status.h"
#include "server/sessions.h"

namespace an1::server {

enum class Scope { kInfer, kShm, kAdmin };

struct Caller {
  std::string principal;  // empty: no authentication configured
  bool infer = true;      // Attention, Matmul, PagedAttention, GetServerInfo
  bool shm = true;        // shared memory registration, release, listing
  bool admin = true;      // GetServerInfo's license details
};

class Authenticator {
 public:
  // Reads a token file: one line per token, `SHA256HEX PRINCIPAL SCOPE[,SCOPE...]` (scopes
  // infer, shm, admin; '#' starts a comment line). INVALID_ARGUMENT naming the line otherwise.
  static StatusOr<std::unique_ptr<Authenticator>> FromFile(const std::string& path);
  // Token file and/or client certificate file (either may be empty, not both). The latter maps
  // verified mTLS client certificates: one line per identity, `NAME PRINCIPAL SCOPE[,SCOPE...]`,
  // NAME a subject alternative name of the certificate (a DNS name, e-mail, URI or IP, as the
  // certificate holds it) or its subject common name.
  static StatusOr<std::unique_ptr<Authenticator>> FromFiles(const std::string& tokens_path,
                                                            const std::string& client_certs_path);

  // The caller of a call with `metadata`; UNAUTHENTICATED without a valid bearer token.
  StatusOr<Caller> Authenticate(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;
  // The caller of `context`'s call: its bearer token when it sends one, else its verified client
  // certificate's identity (SANs first, then the CN); UNAUTHENTICATED when neither maps.
  StatusOr<Caller> Authenticate(const grpc::CallbackServerContext& context) const;

  std::size_t tokens() const { return by_hash_.size(); }
  std::size_t certificate_identities() const { return by_certificate_.size(); }

 private:
  std::map<std::string, Caller> by_hash_;         // lowercase hex SHA-256 of the token -> caller
  std::map<std::string, Caller> by_certificate_;  // SAN or CN -> caller
};

// Lowercase hex SHA-256 of `token` (OpenSSL), as the token file holds it.
std::string TokenHash(const std::string& token);

// The caller of `context`'s call, required to hold `needed`: every scope without `auth`.
StatusOr<Caller> Authorize(const Authenticator* auth, const grpc::CallbackServerContext& context,
                           Scope needed);

// The owner of the caller's shared memory regions: with authentication "principal:NAME", else
// "session:ID/CLIENT", the call's server-issued session (`an1-session-id`, sessions.h) and, within
// it, its `an1-client-id` (ClientId, engine_call.h). Both are required without authentication;
// a declared client id alone reaches nobody's regions.
StatusOr<std::string> RegionOwner(const Caller& caller,
                                  const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                  SessionRegistry* sessions);

}  // namespace an1::server
