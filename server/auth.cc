#include "server/auth.h"

#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "server/engine_call.h"

namespace an1::server {

std::string TokenHash(const std::string& token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(token.data(), token.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return InvalidArgumentError("cannot read the token file " + path);
  auto auth = std::unique_ptr<Authenticator>(new Authenticator());
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string hash, principal, scopes, extra;
    if (!(fields >> hash) || hash[0] == '#') continue;  // blank or comment
    const std::string where = path + " line " + std::to_string(number);
    if (!(fields >> principal >> scopes) || (fields >> extra)) {
      return InvalidArgumentError(where + ": want SHA256HEX PRINCIPAL SCOPE[,SCOPE...]");
    }
    if (hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return InvalidArgumentError(where +
                                  ": the token's hash must be 64 lowercase hex digits "
                                  "(an1d --hash-token prints it)");
    }
    Caller caller{principal, false, false, false};
    std::istringstream list(scopes);
    for (std::string scope; std::getline(list, scope, ',');) {
      if (scope == "infer") {
        caller.infer = true;
      } else if (scope == "shm") {
        caller.shm = true;
      } else if (scope == "admin") {
        caller.admin = true;
      } else {
        return InvalidArgumentError(where + ": unknown scope '" + scope + "' (infer, shm, admin)");
      }
    }
    if (!auth->by_hash_.emplace(hash, caller).second) {
      return InvalidArgumentError(where + ": the same token twice");
    }
  }
  if (auth->by_hash_.empty())
    return InvalidArgumentError("the token file " + path + " has no token");
  return auth;
}

StatusOr<Caller> Authenticator::Authenticate(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  const auto [first, last] = metadata.equal_range("authorization");
  if (first == last) {
    return Status{StatusCode::kUnauthenticated,
                  "this server needs a bearer token ('authorization: Bearer TOKEN' metadata)"};
  }
  const std::string value(first->second.data(), first->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (std::next(first) != last || value.rfind(kBearer, 0) != 0) {
    return Status{StatusCode::kUnauthenticated, "one 'authorization: Bearer TOKEN' entry, please"};
  }
  const auto found = by_hash_.find(TokenHash(value.substr(kBearer.size())));
  if (found == by_hash_.end()) return Status{StatusCode::kUnauthenticated, "unknown token"};
  return found->second;
}

StatusOr<Caller> Authorize(const Authenticator* auth, const grpc::CallbackServerContext& context,
                           Scope needed) {
  if (auth == nullptr) return Caller{};
  StatusOr<Caller> caller = auth->Authenticate(context.client_metadata());
  if (!caller.ok()) return caller;
  const bool allowed = needed == Scope::kInfer ? caller->infer
                       : needed == Scope::kShm ? caller->shm
                                               : caller->admin;
  if (!allowed) {
    const char* name = needed == Scope::kInfer ? "infer" : needed == Scope::kShm ? "shm" : "admin";
    return Status{StatusCode::kPermissionDenied,
                  "principal '" + caller->principal + "' lacks the '" + name + "' scope"};
  }
  return caller;
}

StatusOr<std::string> RegionOwner(const Caller& caller,
                                  const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                  SessionRegistry* sessions) {
  if (!caller.principal.empty()) return "principal:" + caller.principal;
  StatusOr<std::string> client = ClientId(metadata);
  if (!client.ok()) return client;
  if (sessions == nullptr) return InternalError("no session registry");
  StatusOr<std::string> session = sessions->Resolve(metadata);
  if (!session.ok()) return session;
  return "session:" + *session + "/" + *client;
}

}  // namespace an1::server
