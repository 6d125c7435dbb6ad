#include "server/health_service.h"

namespace an1::server {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: writes the current status, then each change, one write at a time (a change
// during a write is sent when it completes, the latest status only). Finishes on Shutdown or
// when the client cancels; deletes itself when gRPC is done with it.
class HealthService::Watcher final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, bool known) : service_(service), known_(known) {}

  // With service->mutex_ held: the status to send changed (or the service shut down).
  void NotifyLocked(Status status, bool finish) {
    latest_ = status;
    pending_ = true;
    finish_after_ = finish_after_ || finish;
    if (!writing_) WriteLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(service_->mutex_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed"));
    if (pending_) return WriteLocked();
    if (finish_after_) FinishLocked(grpc::Status::OK);
  }

  void OnCancel() override {
    std::lock_guard lock(service_->mutex_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      std::lock_guard lock(service_->mutex_);
      service_->watchers_.erase(this);
    }
    delete this;
  }

 private:
  void WriteLocked() {
    if (finished_) return;
    response_.set_status(known_ ? latest_ : HealthCheckResponse::SERVICE_UNKNOWN);
    pending_ = false;
    writing_ = true;
    StartWrite(&response_);
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_ || writing_) {  // a write in flight: OnWriteDone finishes
      finish_after_ = true;
      return;
    }
    finished_ = true;
    Finish(status);
  }

  HealthService* service_;
  const bool known_;
  HealthCheckResponse response_;
  Status latest_ = HealthCheckResponse::UNKNOWN;
  bool pending_ = false;
  bool writing_ = false;
  bool finish_after_ = false;
  bool finished_ = false;
};

bool HealthService::Known(const std::string& service) {
  return service.empty() || service == "an1.v1.An1";
}

void HealthService::SetServing(bool serving) {
  std::lock_guard lock(mutex_);
  if (shut_down_) return;
  serving_ = serving;
  const Status status = serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  for (Watcher* watcher : watchers_) watcher->NotifyLocked(status, false);
}

void HealthService::Shutdown() {
  std::lock_guard lock(mutex_);
  shut_down_ = true;
  serving_ = false;
  for (Watcher* watcher : watchers_) watcher->NotifyLocked(HealthCheckResponse::NOT_SERVING, true);
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const HealthCheckRequest* request,
                                               HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Known(request->service())) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
    return reactor;
  }
  std::lock_guard lock(mutex_);
  response->set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* /*context*/, const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this, Known(request->service()));
  std::lock_guard lock(mutex_);
  watchers_.insert(watcher);
  watcher->NotifyLocked(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING,
                        shut_down_);
  return watcher;
}

}  // namespace an1::server
