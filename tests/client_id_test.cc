// Client identities end to end: the `an1-client-id` metadata entry is compared whole or refused
// (missing, empty, blank, too long, repeated) on every region call, never cut short; without
// tokens it names a client only within its server-issued session (`an1-session-id`).
#include <set>

#include "tests/shared_memory_fixture.h"

namespace an1 {
namespace {

using client::AttentionArgs;
using client::CallResult;
using client::HostTensor;
using testing::Ref;
using testing::SharedMemoryTest;
using testing::ShmObject;

// Client identities: the `an1-client-id` entry is compared whole or refused, never cut short.
class ClientIdTest : public SharedMemoryTest {
 protected:
  // A raw stub: the metadata exactly as given, entries repeated or empty included.
  std::unique_ptr<v1::An1::Stub> RawStub() {
    return v1::An1::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                                grpc::InsecureChannelCredentials()));
  }

  static void ExpectUnauthenticated(const grpc::Status& status, const std::string& why,
                                    const std::string& what) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(why), std::string::npos)
        << what << ": the message says what is wrong: " << status.error_message();
  }

  // Every region call of `client` is refused as UNAUTHENTICATED, the message containing `why`.
  void ExpectEveryRegionCallRefused(client::Client& client, const std::string& shm_key,
                                    const std::string& why) {
    ExpectUnauthenticated(client.RegisterSystemSharedMemory("r", shm_key, 0, 16), why, "register");
    ExpectUnauthenticated(client.RegisterCudaSharedMemory("g", std::string(64, '\x01'), 0, 16), why,
                          "register cuda");
    ExpectUnauthenticated(client.UnregisterSharedMemory("r"), why, "unregister");
    uint32_t removed = 0;
    ExpectUnauthenticated(client.UnregisterAllSharedMemory(&removed), why, "unregister all");
    v1::ListSharedMemoryResponse list;
    ExpectUnauthenticated(client.ListSharedMemory(&list), why, "list");
    Layout l;
    CallResult result;
    ExpectUnauthenticated(client.Attention(RegionArgs(l, "r"), &result), why, "attention");
    AttentionArgs output_only;  // inline inputs, the output placed in a region
    std::string bytes(4 * 4, '\0');
    output_only.q = output_only.k = output_only.v = {v1::DTYPE_FP32, {1, 1, 1, 4}, bytes, {}};
    output_only.output_region = Ref("r", 0, 16);
    ExpectUnauthenticated(client.Attention(std::move(output_only), &result), why,
                          "attention output");
    client::MatmulArgs matmul;
    matmul.a = {v1::DTYPE_FP32, {1, 1}, "", Ref("r", 0, 4)};
    matmul.b = {v1::DTYPE_FP32, {1, 1}, std::string(4, '\0'), {}};
    ExpectUnauthenticated(client.Matmul(std::move(matmul), &result), why, "matmul");
  }

  // An inline request (no region anywhere) works with or without an id.
  static void ExpectInlineServed(client::Client& client) {
    CallResult result;
    AttentionArgs args;
    std::string bytes(4 * 4, '\0');
    args.q = args.k = args.v = {v1::DTYPE_FP32, {1, 1, 1, 4}, bytes, {}};
    grpc::Status status = client.Attention(std::move(args), &result);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
};

TEST_F(ClientIdTest, LongIdsDifferingAfter256CharactersAreNotOneClient) {
  // Once cut to 256 characters these two were the same client: B saw and removed A's region.
  const std::string prefix(256, 'p');
  auto a = MakeClient(prefix + "-alice");
  auto b = MakeClient(prefix + "-bob");
  ShmObject shm(4096);
  ExpectUnauthenticated(a->RegisterSystemSharedMemory("mine", shm.key(), 0, 4096), "128",
                        "an over-long id is refused, not truncated");
  v1::ListSharedMemoryResponse list;
  grpc::Status listed = b->ListSharedMemory(&list);
  EXPECT_EQ(listed.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list.regions_size(), 0) << "B must never see A's region";
  uint32_t removed = 0;
  EXPECT_EQ(b->UnregisterAllSharedMemory(&removed).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(removed, 0u) << "B must never remove A's region";

  // At the limit, ids differing in their last byte are two clients.
  const std::string at_limit(127, 'q');
  auto a128 = MakeClient(at_limit + "a");
  auto b128 = MakeClient(at_limit + "b");
  ASSERT_TRUE(a128->RegisterSystemSharedMemory("mine", shm.key(), 0, 4096).ok());
  ASSERT_TRUE(b128->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 0);
  EXPECT_EQ(b128->UnregisterSharedMemory("mine").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(b128->UnregisterAllSharedMemory(&removed).ok());
  EXPECT_EQ(removed, 0u);
  Layout l;
  CallResult result;
  EXPECT_EQ(b128->Attention(RegionArgs(l, "mine"), &result).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(a128->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 1);
  ExpectServing();
}

TEST_F(ClientIdTest, OverLongIdIsRefusedOnEveryRegionCall) {
  ShmObject shm(4096);
  auto long_id = MakeClient(std::string(129, 'x'));
  ExpectEveryRegionCallRefused(*long_id, shm.key(), "128");
  ExpectInlineServed(*long_id);  // no region: the id is not used
  ExpectServing();
}

TEST_F(ClientIdTest, MissingIdIsRefusedOnEveryRegionCall) {
  ShmObject shm(4096);
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 16).ok());
  auto anonymous = MakeClient("");  // sends no an1-client-id entry
  ExpectEveryRegionCallRefused(*anonymous, shm.key(), "an1-client-id");
  ExpectInlineServed(*anonymous);
  v1::ListSharedMemoryResponse list;
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 1);
}

TEST_F(ClientIdTest, BlankIdIsRefusedOnEveryRegionCall) {
  ShmObject shm(4096);
  // Spaces around an id are refused too: a proxy trimming them would merge two clients.
  for (const std::string id : {" ", "   ", " alice", "alice "}) {
    auto blank = MakeClient(id);
    ExpectEveryRegionCallRefused(*blank, shm.key(), "an1-client-id");
    ExpectInlineServed(*blank);
  }
  ExpectServing();
}

TEST_F(ClientIdTest, EmptyOrRepeatedEntryIsRefused) {
  auto stub = RawStub();
  ShmObject shm(4096);
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, 16).ok());
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"alice", "alice"}, "more than once"},
      {{"alice", "bob"}, "more than once"},
      {{""}, "empty"},
  };
  for (const auto& [values, why] : cases) {
    const std::string what =
        "entries: " + std::to_string(values.size()) + ", first '" + values.front() + "'";
    auto with_ids = [&values = values](grpc::ClientContext* context) {
      for (const std::string& value : values) context->AddMetadata("an1-client-id", value);
    };
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::ListSharedMemoryResponse list;
      ExpectUnauthenticated(stub->ListSharedMemory(&context, {}, &list), why, what + " list");
      EXPECT_EQ(list.regions_size(), 0) << what;
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::RegisterSystemSharedMemoryRequest request;
      request.set_name("r2");
      request.set_key(shm.key());
      request.set_byte_size(16);
      v1::RegisterSharedMemoryResponse response;
      ExpectUnauthenticated(stub->RegisterSystemSharedMemory(&context, request, &response), why,
                            what + " register");
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::UnregisterSharedMemoryRequest request;
      request.set_all(true);
      v1::UnregisterSharedMemoryResponse response;
      ExpectUnauthenticated(stub->UnregisterSharedMemory(&context, request, &response), why,
                            what + " unregister all");
      EXPECT_EQ(response.unregistered(), 0u) << what;
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::UnregisterSharedMemoryRequest request;
      request.set_name("r");
      v1::UnregisterSharedMemoryResponse response;
      ExpectUnauthenticated(stub->UnregisterSharedMemory(&context, request, &response), why,
                            what + " unregister");
    }
    {
      grpc::ClientContext context;
      with_ids(&context);
      v1::MatmulRequest request;
      for (v1::Tensor* t : {request.mutable_a(), request.mutable_b()}) {
        t->set_dtype(v1::DTYPE_FP32);
        t->add_shape(1);
        t->add_shape(1);
      }
      *request.mutable_a()->mutable_region() = Ref("r", 0, 4);
      request.mutable_b()->set_inline_data(std::string(4, '\0'));
      v1::MatmulResponse response;
      ExpectUnauthenticated(stub->Matmul(&context, request, &response), why, what + " matmul");
    }
  }
  v1::ListSharedMemoryResponse list;
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  ASSERT_EQ(list.regions_size(), 1) << "alice's region is untouched";
  EXPECT_EQ(list.regions(0).name(), "r");
  ExpectServing();
}

// Issue 18: a caller declaring another's `an1-client-id` reached its regions. Without tokens the
// owner is the server-issued session as well: the same declared id in another session, or with a
// guessed session id, cannot list, read, overwrite or unregister them.
TEST_F(ClientIdTest, DeclaringAnothersIdReachesNothingOutsideItsSession) {
  Layout l;
  ShmObject shm(l.total());
  std::memset(shm.data(), 0x11, l.total());
  ASSERT_TRUE(alice_->RegisterSystemSharedMemory("r", shm.key(), 0, l.total()).ok());
  auto mallory = MakeClient("alice");  // the same declared id, its own session
  v1::ListSharedMemoryResponse list;
  ASSERT_TRUE(mallory->ListSharedMemory(&list).ok());
  EXPECT_EQ(list.regions_size(), 0);
  EXPECT_EQ(mallory->UnregisterSharedMemory("r").error_code(), grpc::StatusCode::NOT_FOUND);
  uint32_t removed = 7;
  ASSERT_TRUE(mallory->UnregisterAllSharedMemory(&removed).ok());
  EXPECT_EQ(removed, 0u);
  CallResult result;
  EXPECT_EQ(mallory->Attention(RegionArgs(l, "r"), &result).error_code(),
            grpc::StatusCode::NOT_FOUND);

  auto stub = RawStub();
  for (const std::string session : {std::string(32, '0'), std::string("guessed"), std::string()}) {
    grpc::ClientContext context;
    context.AddMetadata("an1-client-id", "alice");
    if (!session.empty()) context.AddMetadata("an1-session-id", session);
    v1::UnregisterSharedMemoryRequest request;
    request.set_all(true);
    v1::UnregisterSharedMemoryResponse response;
    ExpectUnauthenticated(stub->UnregisterSharedMemory(&context, request, &response), "session",
                          "session '" + session + "'");
    EXPECT_EQ(response.unregistered(), 0u);
  }
  ASSERT_TRUE(alice_->ListSharedMemory(&list).ok());
  ASSERT_EQ(list.regions_size(), 1) << "alice's region is untouched";
  for (uint64_t i = 0; i < l.total(); ++i) ASSERT_EQ(shm.data()[i], std::byte{0x11}) << i;
  ExpectServing();
}

// Session ids are the server's: 32 hex digits, a new one per CreateSession.
TEST_F(ClientIdTest, SessionsAreServerIssuedAndDistinct) {
  auto stub = RawStub();
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext context;
    v1::CreateSessionResponse response;
    ASSERT_TRUE(stub->CreateSession(&context, {}, &response).ok());
    EXPECT_EQ(response.session_id().size(), 32u);
    EXPECT_EQ(response.session_id().find_first_not_of("0123456789abcdef"), std::string::npos);
    ids.insert(response.session_id());
  }
  EXPECT_EQ(ids.size(), 100u);
}

// The rule itself, including what gRPC clients cannot send (control characters, non-ASCII).
TEST(ClientIdRuleTest, AcceptsExactlyOnePrintableIdUpToTheLimit) {
  const auto parse = [](const std::vector<std::string>& values) {
    std::multimap<grpc::string_ref, grpc::string_ref> metadata;
    metadata.emplace("an1-other", "x");
    for (const std::string& value : values) metadata.emplace("an1-client-id", value);
    return server::ClientId(metadata);
  };
  const std::string longest(server::kMaxClientIdBytes, 'z');
  for (const std::string id : {std::string("alice"), std::string("a b"), std::string("~!{}"),
                               longest, std::string(1, 'x')}) {
    const StatusOr<std::string> parsed = parse({id});
    ASSERT_TRUE(parsed.ok()) << id << ": " << parsed.status().ToString();
    EXPECT_EQ(*parsed, id) << "taken whole";
  }
  const std::vector<std::pair<std::vector<std::string>, std::string>> refused = {
      {{}, "needs an 'an1-client-id'"},
      {{"alice", "alice"}, "more than once"},
      {{"alice", "bob", "carol"}, "3 times"},
      {{""}, "empty"},
      {{longest + "z"}, "129 bytes, more than the limit of 128"},
      {{std::string(300, 'p') + "-alice"}, "limit of 128"},
      {{" "}, "blank"},
      {{"  "}, "blank"},
      {{" alice"}, "space"},
      {{"alice "}, "space"},
      {{"\t"}, "control character"},
      {{"al\nice"}, "control character"},
      {{std::string("al\0ice", 6)}, "control character"},
      {{"alice\x7f"}, "control character"},
      {{"\xc3\xa9"}, "outside printable ASCII"},
  };
  for (const auto& [values, why] : refused) {
    const StatusOr<std::string> parsed = parse(values);
    ASSERT_FALSE(parsed.ok()) << why;
    EXPECT_EQ(parsed.status().code(), StatusCode::kUnauthenticated) << why;
    EXPECT_NE(parsed.status().message().find(why), std::string::npos) << parsed.status().message();
  }
}

}  // namespace
}  // namespace an1
