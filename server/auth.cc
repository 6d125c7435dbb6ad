#include "server/auth.h"

#include <openssl/evp.h>

#include <fstream>
#include <functional>
#include <sstream>

#include "server/engine_call.h"
#include "server/random_id.h"

namespace an1::server {

std::string TokenHash(const std::string& token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(token.data(), token.size(), digest, &size, EVP_sha256(), nullptr);
  return Hex(digest, size);
}

namespace {

// Lines of `KEY PRINCIPAL SCOPE[,SCOPE...]` ('#' starts a comment line) into `into`; `check_key`
// says what is wrong with a key, or nothing.
Status ReadIdentities(const std::string& what, const std::string& path, const std::string& key_name,
                      const std::function<std::string(const std::string&)>& check_key,
                      std::map<std::string, Caller>* into) {
  std::ifstream in(path);
  if (!in) return InvalidArgumentError("cannot read " + what + " " + path);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string key, principal, scopes, extra;
    if (!(fields >> key) || key[0] == '#') continue;  // blank or comment
    const std::string where = path + " line " + std::to_string(number);
    if (!(fields >> principal >> scopes) || (fields >> extra)) {
      return InvalidArgumentError(where + ": want " + key_name + " PRINCIPAL SCOPE[,SCOPE...]");
    }
    if (const std::string wrong = check_key(key); !wrong.empty()) {
      return InvalidArgumentError(where + ": " + wrong);
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
    if (!into->emplace(key, caller).second) {
      return InvalidArgumentError(where + ": the same " + key_name + " twice (in " + what + ")");
    }
  }
  if (into->empty()) return InvalidArgumentError(what + " " + path + " has no entry");
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromFile(const std::string& path) {
  return FromFiles(path, "");
}

StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromFiles(
    const std::string& tokens_path, const std::string& client_certs_path) {
  auto auth = std::unique_ptr<Authenticator>(new Authenticator());
  if (!tokens_path.empty()) {
    AN1_RETURN_IF_ERROR(ReadIdentities(
        "the token file", tokens_path, "SHA256HEX",
        [](const std::string& hash) -> std::string {
          if (hash.size() == 64 &&
              hash.find_first_not_of("0123456789abcdef") == std::string::npos) {
            return "";
          }
          return "the token's hash must be 64 lowercase hex digits (an1d --hash-token prints it)";
        },
        &auth->by_hash_));
  }
  if (!client_certs_path.empty()) {
    AN1_RETURN_IF_ERROR(ReadIdentities(
        "the client certificate file", client_certs_path, "NAME",
        [](const std::string&) { return std::string(); }, &auth->by_certificate_));
  }
  if (auth->by_hash_.empty() && auth->by_certificate_.empty()) {
    return InvalidArgumentError("no token file and no client certificate file");
  }
  return auth;
}

StatusOr<Caller> Authenticator::Authenticate(const grpc::CallbackServerContext& context) const {
  const auto& metadata = context.client_metadata();
  if (metadata.count("authorization") > 0 || by_certificate_.empty()) {
    return Authenticate(metadata);
  }
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) {
    return Status{StatusCode::kUnauthenticated,
                  "this server needs a bearer token or a client certificate it knows"};
  }
  std::string names;
  for (const char* property : {"x509_subject_alternative_name", "x509_common_name"}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      const std::string name(value.data(), value.size());
      const auto found = by_certificate_.find(name);
      if (found != by_certificate_.end()) return found->second;
      names += (names.empty() ? "'" : ", '") + name + "'";
    }
  }
  return Status{StatusCode::kUnauthenticated,
                "the client certificate (" + (names.empty() ? std::string("no name") : names) +
                    ") maps to no principal, and the call has no bearer token"};
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
  StatusOr<Caller> caller = auth->Authenticate(context);
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
