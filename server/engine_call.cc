#include "server/engine_call.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <iterator>

#include "server/convert.h"

namespace an1::server {
namespace {

using Clock = std::chrono::steady_clock;

// Reserved for the response's fields besides the output bytes when checking the message limit.
constexpr uint64_t kResponseOverheadBytes = 64 * 1024;

std::string LowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Clock::time_point SteadyDeadline(std::chrono::system_clock::time_point deadline) {
  const auto now_system = std::chrono::system_clock::now();
  if (deadline >= now_system + std::chrono::hours(24 * 365)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(deadline - now_system);
}

}  // namespace

StatusOr<std::string> ClientId(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  const auto unauthenticated = [](const std::string& what) -> Status {
    return {StatusCode::kUnauthenticated, "the 'an1-client-id' request metadata entry " + what};
  };
  const auto [first, last] = metadata.equal_range("an1-client-id");
  if (first == last) {
    return Status{StatusCode::kUnauthenticated,
                  "shared memory needs an 'an1-client-id' request metadata entry"};
  }
  if (std::next(first) != last) {
    return unauthenticated("is given more than once (" +
                           std::to_string(std::distance(first, last)) + " times); send it once");
  }
  const std::string id(first->second.data(), first->second.size());
  if (id.empty()) return unauthenticated("is empty");
  if (id.size() > kMaxClientIdBytes) {
    return unauthenticated("has " + std::to_string(id.size()) + " bytes, more than the limit of " +
                           std::to_string(kMaxClientIdBytes));
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c > 0x7e) {
      return unauthenticated(
          "has a control character or a byte outside printable ASCII at offset " +
          std::to_string(i));
    }
  }
  if (id.find_first_not_of(' ') == std::string::npos) return unauthenticated("is blank");
  if (id.front() == ' ' || id.back() == ' ') {
    return unauthenticated("begins or ends with a space");
  }
  return id;
}

EngineCall::EngineCall(grpc::CallbackServerContext* context, const CallEnvironment& env,
                       const char* rpc)
    : env_(env),
      rpc_(rpc),
      caller_(Authorize(env.auth, *context, Scope::kInfer)),
      client_(caller_.ok() ? RegionOwner(*caller_, context->client_metadata(), env.sessions)
                           : StatusOr<std::string>(caller_.status())),
      started_(Clock::now()) {
  control_.deadline = SteadyDeadline(context->deadline());
  control_.cancelled = std::make_shared<std::atomic<bool>>(false);
  env_.metrics->in_flight().Increment();
}

StatusOr<TensorView> EngineCall::Input(const char* name, bool present, const v1::Tensor& tensor) {
  StatusOr<TensorView> view = ToTensorView(name, present, tensor);
  if (!view.ok() || tensor.data_case() != v1::Tensor::kRegion) {
    if (view.ok()) bytes_in_ += view->data.size();
    return view;
  }
  const v1::RegionRef& ref = tensor.region();
  if (!client_.ok()) return client_.status();
  StatusOr<std::shared_ptr<Region>> region = env_.regions->Lease(*client_, ref.region());
  if (!region.ok()) return region.status();
  if (ref.byte_size() > env_.max_tensor_bytes) {
    return ResourceExhaustedError(std::string(name) + " refers to " +
                                  std::to_string(ref.byte_size()) +
                                  " bytes, above this server's limit per tensor");
  }
  AN1_RETURN_IF_ERROR((*region)->CheckRange(ref.offset(), ref.byte_size()));
  leases_.push_back(*region);
  if ((*region)->device() >= 0) {  // CUDA IPC: the engine reads it in place on that GPU
    view->data = std::span<const std::byte>((*region)->device_data(ref.offset()), ref.byte_size());
    view->device = (*region)->device();
    transport_ = "cuda-ipc";
    return view;
  }
  // Not zero-filled: every byte is read from the region, or the request fails.
  std::unique_ptr<std::byte[]>& storage =
      buffers_.emplace_back(new std::byte[static_cast<std::size_t>(ref.byte_size())]);
  const std::span<std::byte> buffer(storage.get(), static_cast<std::size_t>(ref.byte_size()));
  pending_reads_.push_back({*region, ref.offset(), buffer});
  transport_ = "shm";
  bytes_in_ += buffer.size();
  view->data = buffer;
  return view;
}

Status EngineCall::SetOutputPlacement(bool present, const v1::OutputPlacement& placement) {
  if (!present || !placement.has_region()) return OkStatus();
  if (!client_.ok()) return client_.status();
  StatusOr<std::shared_ptr<Region>> region =
      env_.regions->Lease(*client_, placement.region().region());
  if (!region.ok()) return region.status();
  AN1_RETURN_IF_ERROR((*region)->CheckWritable());
  output_region_ = *region;
  output_ref_ = placement.region();
  return OkStatus();
}

StatusOr<std::span<float>> EngineCall::LseOutput(const TensorView& q, v1::Tensor* lse) {
  const std::size_t elements = LseElements(q);
  return InlineLse(elements, std::span(q.shape).first(elements > 0 ? 3 : 0), lse);
}

StatusOr<std::span<float>> EngineCall::PagedLseOutput(const TensorView& q, v1::Tensor* lse) {
  const std::size_t elements = PagedLseElements(q);
  return InlineLse(elements, std::span(q.shape).first(elements > 0 ? 2 : 0), lse);
}

StatusOr<std::span<float>> EngineCall::InlineLse(std::size_t elements,
                                                 std::span<const int64_t> shape, v1::Tensor* lse) {
  // Checked before the bytes exist: a large q must not make the server allocate an LSE that no
  // response could carry.
  if (elements > (env_.max_message_bytes -
                  std::min<uint64_t>(env_.max_message_bytes, kResponseOverheadBytes)) /
                     sizeof(float)) {
    return ResourceExhaustedError("the log-sum-exp needs " +
                                  std::to_string(elements * sizeof(float)) +
                                  " bytes, more than fits in a response of at most " +
                                  std::to_string(env_.max_message_bytes) + " bytes");
  }
  lse->set_dtype(v1::DTYPE_FP32);
  for (int64_t dim : shape) lse->add_shape(dim);
  std::string* bytes = lse->mutable_inline_data();
  bytes->resize(elements * sizeof(float));
  lse_bytes_ = bytes->size();
  return std::span<float>(reinterpret_cast<float*>(bytes->data()), elements);
}

StatusOr<std::span<std::byte>> EngineCall::WritableInput(const TensorView& input) {
  if (input.data.empty()) return std::span<std::byte>();
  if (input.device >= 0) {  // CUDA IPC: the caller's own memory, which the request may write
    return std::span<std::byte>(const_cast<std::byte*>(input.data.data()), input.data.size());
  }
  for (const PendingRead& read : pending_reads_) {
    if (read.into.data() == input.data.data() && read.into.size() == input.data.size()) {
      AN1_RETURN_IF_ERROR(read.region->CheckWritable());
      write_backs_.push_back(read);
      return read.into;
    }
  }
  return std::span<std::byte>();  // inline: part of the request message
}

Status EngineCall::WriteBackAppended() {
  for (const PendingRead& target : write_backs_) {
    for (const CacheRange& range : appended_) {
      AN1_RETURN_IF_ERROR(target.region->Write(target.offset + range.offset,
                                               target.into.subspan(range.offset, range.size)));
    }
  }
  return OkStatus();
}

Status EngineCall::CheckOutput(const TensorSpec& spec) {
  if (output_region_) {
    if (output_ref_.byte_size() < spec.byte_size) {
      return InvalidArgumentError("the output region range has " +
                                  std::to_string(output_ref_.byte_size()) +
                                  " bytes; the output needs " + std::to_string(spec.byte_size));
    }
    AN1_RETURN_IF_ERROR(output_region_->CheckRange(output_ref_.offset(), spec.byte_size));
  }
  // Inline in the response: the output unless it goes to a region, and the log-sum-exp.
  const uint64_t output_bytes = output_region_ ? 0 : spec.byte_size;
  if (output_bytes + lse_bytes_ + kResponseOverheadBytes <= env_.max_message_bytes) {
    return OkStatus();
  }
  const std::string limit = " bytes, more than fits in a response of at most " +
                            std::to_string(env_.max_message_bytes) + " bytes";
  if (lse_bytes_ == 0) {
    return ResourceExhaustedError("the output needs " + std::to_string(output_bytes) + limit +
                                  "; direct it into a shared memory region");
  }
  if (output_bytes == 0) {
    return ResourceExhaustedError("the log-sum-exp needs " + std::to_string(lse_bytes_) + limit);
  }
  return ResourceExhaustedError("the output and its log-sum-exp need " +
                                std::to_string(output_bytes) + " + " + std::to_string(lse_bytes_) +
                                limit + "; direct the output into a shared memory region");
}

StatusOr<std::span<std::byte>> EngineCall::PrepareToRun(const TensorSpec& spec) {
  for (const PendingRead& read : pending_reads_) {
    AN1_RETURN_IF_ERROR(read.region->Read(read.offset, read.into));
  }
  output_->set_dtype(ToProtoDType(spec.dtype));
  for (int64_t dim : spec.shape) output_->add_shape(dim);
  if (output_region_ && output_region_->device() >= 0) {  // written in place by the GPU
    return std::span<std::byte>(output_region_->device_data(output_ref_.offset()), spec.byte_size);
  }
  if (output_region_) {
    output_buffer_.resize(spec.byte_size);
    return std::span<std::byte>(output_buffer_);
  }
  std::string* bytes = output_->mutable_inline_data();
  bytes->resize(spec.byte_size);
  return std::span(reinterpret_cast<std::byte*>(bytes->data()), bytes->size());
}

void EngineCall::Submit(PreparedRequest prepared, v1::Tensor* output, v1::ExecutionInfo* info) {
  output_ = output;
  info_ = info;
  // Checked before admission, so that a result with nowhere to go is refused at once.
  if (Status placed = CheckOutput(prepared.output); !placed.ok()) return Reject(placed);
  if (output_region_) prepared.output_device = output_region_->device();
  env_.metrics->RecordBytes(transport_, "in", static_cast<double>(bytes_in_));
  Status admitted = env_.engine->Submit(
      std::move(prepared), [this](const TensorSpec& spec) { return PrepareToRun(spec); }, control_,
      [this](const Status& status, const ExecutionReport& report) { Complete(status, report); });
  if (!admitted.ok()) Reject(admitted);
}

void EngineCall::Reject(const Status& status) {
  env_.metrics->RecordRejection(LowerCase(StatusCodeName(status.code())));
  FinishWith(status, "none");
}

void EngineCall::Complete(Status status, const ExecutionReport& report) {
  // A caller gone while its request ran to the end (a GPU kernel is not stopped) received
  // CANCELLED or DEADLINE_EXCEEDED, not this result: that is the code recorded.
  if (status.ok() && control_.cancelled->load()) {
    if (Status gone = control_.StopReason("before the reply"); !gone.ok()) status = gone;
  }
  if (status.ok()) status = WriteBackAppended();
  if (status.ok() && output_region_) {
    if (output_region_->device() < 0) {
      status = output_region_->Write(output_ref_.offset(), output_buffer_);
    }
    if (status.ok()) *output_->mutable_region() = output_ref_;
  }
  // A request dropped before it ran (its caller left, its deadline passed) is not counted
  // under the backend that would have run it.
  const std::string backend =
      report.executed ? std::string(BackendKindName(report.backend)) : "none";
  if (status.ok()) {
    FillExecutionInfo(report, info_);
    info_->set_server_seconds(std::chrono::duration<double>(Clock::now() - started_).count());
    const char* out_transport = !output_region_                 ? "inline"
                                : output_region_->device() >= 0 ? "cuda-ipc"
                                                                : "shm";
    env_.metrics->RecordBytes(out_transport, "out", static_cast<double>(report.output_bytes));
    if (lse_bytes_ > 0) env_.metrics->RecordBytes("inline", "out", static_cast<double>(lse_bytes_));
  }
  if (report.executed) {
    env_.metrics->RecordExecution(rpc_, backend, report, status.ok());
  } else {
    env_.metrics->RecordRejection(LowerCase(StatusCodeName(status.code())));
  }
  FinishWith(status, backend);
}

void EngineCall::FinishWith(const Status& status, const std::string& backend) {
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  if (status.code() == StatusCode::kInternal) {
    spdlog::error("{} failed: {}", rpc_, status.message());
  } else if (!status.ok() && spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("{} -> {}", rpc_, status.ToString());
  }
  env_.metrics->RecordRequest(rpc_, backend, std::string(StatusCodeName(status.code())), seconds);
  env_.metrics->in_flight().Decrement();
  Finish(ToGrpcStatus(status));  // last use of `this`: OnDone may delete it from here on
}

}  // namespace an1::server
