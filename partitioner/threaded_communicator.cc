#include "partitioner/threaded_communicator.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"

namespace spillway {

ThreadedCommunicator::ThreadedCommunicator(Communicator* inner, double timeout_s)
    : inner_(inner), timeout_(timeout_s), worker_([this] { Run(); }) {}

ThreadedCommunicator::~ThreadedCommunicator() {
  std::unique_lock<std::mutex> lock(mu_);
  if (broken_.ok()) WaitThrough(lock, next_ - 1).IgnoreError();
  stop_ = true;
  const bool stuck = !broken_.ok();
  lock.unlock();
  cv_.notify_all();
  if (stuck) {
    worker_.detach();  // blocked in a call that will never return; the job is ending
  } else {
    worker_.join();
  }
}

void ThreadedCommunicator::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    auto [handle, job] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    absl::Status status = job();
    lock.lock();
    done_.emplace(handle, std::move(status));
    finished_through_ = handle;
    cv_.notify_all();
  }
}

absl::StatusOr<Communicator::Handle> ThreadedCommunicator::Enqueue(
    std::function<absl::Status()> job) {
  std::lock_guard<std::mutex> lock(mu_);
  SPW_RETURN_IF_ERROR(broken_);
  const Handle handle = next_++;
  queue_.emplace_back(handle, std::move(job));
  cv_.notify_all();
  return handle;
}

absl::Status ThreadedCommunicator::WaitThrough(std::unique_lock<std::mutex>& lock, Handle last) {
  while (finished_through_ < last) {
    SPW_RETURN_IF_ERROR(broken_);
    const Handle before = finished_through_;
    const bool progressed =
        timeout_.count() <= 0
            ? (cv_.wait(lock, [&] { return finished_through_ != before; }), true)
            : cv_.wait_for(lock, timeout_, [&] { return finished_through_ != before; });
    if (!progressed) {
      broken_ = absl::DeadlineExceededError(absl::StrFormat(
          "rank %d: no collective finished for %.0f s (trainer.comm_timeout_s): another rank "
          "has stopped taking part (stuck, or gone without ending the job)",
          inner_->rank(), timeout_.count()));
    }
  }
  return absl::OkStatus();
}

absl::Status ThreadedCommunicator::Wait(Handle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  if (handle == 0 || handle >= next_) {
    return absl::InvalidArgumentError(absl::StrCat("no started collective has handle ", handle));
  }
  SPW_RETURN_IF_ERROR(WaitThrough(lock, handle));
  auto it = done_.find(handle);
  if (it == done_.end()) return absl::OkStatus();  // collected by a blocking call
  absl::Status status = std::move(it->second);
  done_.erase(it);
  return status;
}

absl::Status ThreadedCommunicator::RunInOrder(std::function<absl::Status()> job) {
  SPW_ASSIGN_OR_RETURN(const Handle handle, Enqueue(std::move(job)));
  std::unique_lock<std::mutex> lock(mu_);
  SPW_RETURN_IF_ERROR(WaitThrough(lock, handle));
  absl::Status own = std::move(done_[handle]);
  done_.erase(handle);
  absl::Status first;
  for (auto& [h, status] : done_) first.Update(status);
  done_.clear();
  first.Update(own);
  return first;
}

absl::StatusOr<Communicator::Handle> ThreadedCommunicator::StartAllGather(const float* send,
                                                                          float* recv,
                                                                          size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllGather", send, recv, n_per_rank));
  return Enqueue([=, this] { return inner_->AllGather(send, recv, n_per_rank); });
}

absl::StatusOr<Communicator::Handle> ThreadedCommunicator::StartReduceScatterSum(
    const float* send, float* recv, size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("ReduceScatterSum", send, recv, n_per_rank));
  return Enqueue([=, this] { return inner_->ReduceScatterSum(send, recv, n_per_rank); });
}

absl::StatusOr<Communicator::Handle> ThreadedCommunicator::StartAllReduceSum(float* data,
                                                                             size_t n) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllReduceSum", data, data, n));
  return Enqueue([=, this] { return inner_->AllReduceSum(data, n); });
}

absl::Status ThreadedCommunicator::AllReduceSum(float* data, size_t n) {
  return RunInOrder([=, this] { return inner_->AllReduceSum(data, n); });
}

absl::Status ThreadedCommunicator::AllGather(const float* send, float* recv, size_t n_per_rank) {
  return RunInOrder([=, this] { return inner_->AllGather(send, recv, n_per_rank); });
}

absl::Status ThreadedCommunicator::ReduceScatterSum(const float* send, float* recv,
                                                    size_t n_per_rank) {
  return RunInOrder([=, this] { return inner_->ReduceScatterSum(send, recv, n_per_rank); });
}

absl::Status ThreadedCommunicator::Broadcast(void* data, size_t bytes, int root) {
  return RunInOrder([=, this] { return inner_->Broadcast(data, bytes, root); });
}

absl::Status ThreadedCommunicator::Send(const void* data, size_t bytes, int peer, int tag) {
  return RunInOrder([=, this] { return inner_->Send(data, bytes, peer, tag); });
}

absl::Status ThreadedCommunicator::Recv(void* data, size_t bytes, int peer, int tag) {
  return RunInOrder([=, this] { return inner_->Recv(data, bytes, peer, tag); });
}

absl::Status ThreadedCommunicator::Barrier() {
  return RunInOrder([this] { return inner_->Barrier(); });
}

absl::StatusOr<bool> ThreadedCommunicator::AllEqual(uint64_t value) {
  bool equal = false;
  SPW_RETURN_IF_ERROR(RunInOrder([&, this]() -> absl::Status {
    SPW_ASSIGN_OR_RETURN(equal, inner_->AllEqual(value));
    return absl::OkStatus();
  }));
  return equal;
}

}  // namespace spillway
