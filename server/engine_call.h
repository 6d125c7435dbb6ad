// EngineCall: the reactor of one Attention, PagedAttention or Matmul call, from arrival until gRPC
// reports it done. It resolves the request's tensors (inline bytes, or regions read into buffers it
// owns, holding a lease on each region), hands the request to the engine, places the output (inline
// in the response, or written into a region) and finishes the call with metrics.
//
// Lifetime: created by the handler, deleted by OnDone after Finish. Finish is called exactly
// once, from Reject (before the engine took the request) or from the engine's completion.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "an1/v1/an1.grpc.pb.h"
#include "engine/engine.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/shared_memory.h"

namespace an1::server {

// What every call needs from the server; outlives the calls.
struct CallEnvironment {
  Engine* engine = nullptr;
  ServerMetrics* metrics = nullptr;
  RegionRegistry* regions = nullptr;
  uint64_t max_message_bytes = 0;
  uint64_t max_tensor_bytes = 0;
  const Authenticator* auth = nullptr;   // null: no authentication (auth.h)
  DescriptorTickets* tickets = nullptr;  // descriptors passed on the shm socket
  std::string shm_socket;                // its path; empty when shared memory is off
  SessionRegistry* sessions = nullptr;   // owners of regions without authentication
  std::string grpc_unix_socket;          // the Unix socket gRPC is also served on; may be empty
};

// The longest `an1-client-id` accepted, in bytes: a longer one is refused, never shortened.
inline constexpr std::size_t kMaxClientIdBytes = 128;

// The client named by a call's `an1-client-id` metadata entry (`context->client_metadata()`),
// the owner of the shared memory regions the call may use: the value whole, to be compared
// exactly. Every region call goes through here. UNAUTHENTICATED, saying what is wrong, when the
// entry is absent or given more than once, or its value is empty, longer than
// kMaxClientIdBytes, blank, begins or ends with a space, or has a byte outside printable ASCII
// (0x20-0x7e: no control characters).
StatusOr<std::string> ClientId(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

class EngineCall final : public grpc::ServerUnaryReactor {
 public:
  EngineCall(grpc::CallbackServerContext* context, const CallEnvironment& env, const char* rpc);

  // The caller left or its deadline passed: a request still queued leaves the queue at once.
  void OnCancel() override { env_.engine->Withdraw(control_); }
  void OnDone() override { delete this; }

  // OK when the caller may run inference (auth.h): every handler checks it first.
  Status Authorized() const { return caller_.status(); }

  // A request tensor as a view: inline bytes stay in the request; a region's bytes are read into
  // a buffer this call owns. Errors as in ToTensorView and Region::Read, NOT_FOUND for an unknown
  // region, RESOURCE_EXHAUSTED for a region tensor above the tensor size limit, UNAUTHENTICATED
  // (as ClientId) for a region tensor of a call without a valid client id.
  StatusOr<TensorView> Input(const char* name, bool present, const v1::Tensor& tensor);
  // Records where the output goes: a region (checked when the output size is known) or inline.
  // A region needs a valid client id, as Input.
  Status SetOutputPlacement(bool present, const v1::OutputPlacement& placement);
  // Attention with return_lse: gives `lse` (the response's) its dtype, shape (B, H, Sq) and
  // inline bytes, and returns them as the host floats the engine writes (AttentionInputs::lse),
  // counted in the response size check. Sized from q before validation: empty when q cannot be
  // valid (LseElements), and validation then refuses the request. RESOURCE_EXHAUSTED, before
  // any byte is allocated, when the LSE alone would not fit in a response.
  StatusOr<std::span<float>> LseOutput(const TensorView& q, v1::Tensor* lse);
  // The same for PagedAttention: (total_q, H) from q (total_q, H, D) (PagedLseElements).
  StatusOr<std::span<float>> PagedLseOutput(const TensorView& q, v1::Tensor* lse);

  // The writable bytes of an input (from Input) the request appends into (paged attention's
  // caches): for system shared memory this call's buffer, whose appended ranges (AppendedRanges)
  // are written back into the region once the request succeeded; for CUDA IPC the region's memory
  // itself. Empty for an inline tensor, whose update would have nowhere to go; PERMISSION_DENIED
  // for a region registered from a read-only descriptor.
  StatusOr<std::span<std::byte>> WritableInput(const TensorView& input);
  // Where the engine records the byte ranges it appended (PagedAttentionInputs::appended).
  std::vector<CacheRange>* AppendedRanges() { return &appended_; }

  // Hands a prepared request to the engine; the reply follows when it is done. `output` and
  // `info` belong to the response.
  void Submit(PreparedRequest prepared, v1::Tensor* output, v1::ExecutionInfo* info);

  // Replies with an error before the engine ran anything.
  void Reject(const Status& status);

 private:
  Status CheckOutput(const TensorSpec& spec);
  StatusOr<std::span<float>> InlineLse(std::size_t elements, std::span<const int64_t> shape,
                                       v1::Tensor* lse);
  // After success: the appended ranges of every written-back input, into its region.
  Status WriteBackAppended();
  // Runs on the executor thread just before the request: reads pending region inputs, then
  // gives the output its bytes (inline in the response, a buffer for a system region, or the
  // CUDA region itself).
  StatusOr<std::span<std::byte>> PrepareToRun(const TensorSpec& spec);
  void Complete(Status status, const ExecutionReport& report);
  void FinishWith(const Status& status, const std::string& backend);

  CallEnvironment env_;
  const char* rpc_;
  StatusOr<Caller> caller_;       // the call's authorization (infer scope)
  StatusOr<std::string> client_;  // checked only when a region is used: inline calls need no id
  std::chrono::steady_clock::time_point started_;
  RequestControl control_;
  std::string transport_ = "inline";  // "shm" once any tensor is in a region
  uint64_t bytes_in_ = 0;
  uint64_t lse_bytes_ = 0;  // inline log-sum-exp bytes of the response (attention, when asked)

  std::vector<std::shared_ptr<Region>> leases_;  // held until the call is done
  // System shared memory inputs: buffers sized (not filled) on the gRPC thread, read from their
  // regions on the engine's executor thread just before the request runs, so that reading
  // hundreds of MiB never blocks a gRPC callback thread.
  struct PendingRead {
    std::shared_ptr<Region> region;
    uint64_t offset;
    std::span<std::byte> into;
  };
  std::vector<std::unique_ptr<std::byte[]>> buffers_;
  std::vector<PendingRead> pending_reads_;
  // Inputs the request writes into (WritableInput) that live in system shared memory.
  std::vector<PendingRead> write_backs_;
  std::vector<CacheRange> appended_;
  std::shared_ptr<Region> output_region_;
  v1::RegionRef output_ref_;
  std::vector<std::byte> output_buffer_;  // the result, before it is written to the region
  v1::Tensor* output_ = nullptr;
  v1::ExecutionInfo* info_ = nullptr;
};

}  // namespace an1::server
