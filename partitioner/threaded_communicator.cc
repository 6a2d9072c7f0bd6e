#include "partitioner/threaded_communicator.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

ThreadedCommunicator::ThreadedCommunicator(Communicator* inner)
    : inner_(inner), worker_([this] { Run(); }) {}

ThreadedCommunicator::~ThreadedCommunicator() {
  Drain().IgnoreError();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
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

Communicator::Handle ThreadedCommunicator::Enqueue(std::function<absl::Status()> job) {
  std::lock_guard<std::mutex> lock(mu_);
  const Handle handle = next_++;
  queue_.emplace_back(handle, std::move(job));
  cv_.notify_all();
  return handle;
}

absl::Status ThreadedCommunicator::Wait(Handle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  if (handle == 0 || handle >= next_) {
    return absl::InvalidArgumentError(absl::StrCat("no started collective has handle ", handle));
  }
  cv_.wait(lock, [&] { return finished_through_ >= handle; });
  auto it = done_.find(handle);
  if (it == done_.end()) return absl::OkStatus();  // collected by a blocking call's drain
  absl::Status status = std::move(it->second);
  done_.erase(it);
  return status;
}

absl::Status ThreadedCommunicator::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  const Handle last = next_ - 1;
  cv_.wait(lock, [&] { return finished_through_ >= last; });
  absl::Status first;
  for (auto& [handle, status] : done_) first.Update(status);
  done_.clear();
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
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->AllReduceSum(data, n);
}

absl::Status ThreadedCommunicator::AllGather(const float* send, float* recv, size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->AllGather(send, recv, n_per_rank);
}

absl::Status ThreadedCommunicator::ReduceScatterSum(const float* send, float* recv,
                                                    size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->ReduceScatterSum(send, recv, n_per_rank);
}

absl::Status ThreadedCommunicator::Broadcast(void* data, size_t bytes, int root) {
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->Broadcast(data, bytes, root);
}

absl::Status ThreadedCommunicator::Send(const void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->Send(data, bytes, peer, tag);
}

absl::Status ThreadedCommunicator::Recv(void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->Recv(data, bytes, peer, tag);
}

absl::Status ThreadedCommunicator::Barrier() {
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->Barrier();
}

absl::StatusOr<bool> ThreadedCommunicator::AllEqual(uint64_t value) {
  SPW_RETURN_IF_ERROR(Drain());
  return inner_->AllEqual(value);
}

}  // namespace spillway
