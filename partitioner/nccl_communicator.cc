#include "partitioner/nccl_communicator.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/cuda_status.h"
#include "core/status.h"
#include "partitioner/nccl_check.h"

namespace spillway {

absl::Status NcclStatus(ncclResult_t result, absl::string_view what) {
  if (result == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": NCCL error ", static_cast<int>(result), ": ",
                                          ncclGetErrorString(result), " (",
                                          ncclGetLastError(nullptr), ")"));
}

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::Create(Communicator& control,
                                                                       void* compute_stream,
                                                                       double timeout_s) {
  if (compute_stream == nullptr) {
    return absl::InvalidArgumentError("NcclCommunicator needs the GPU backend's stream");
  }
  ncclUniqueId id{};
  if (control.rank() == 0) SPW_NCCL_CHECK(ncclGetUniqueId(&id));
  SPW_RETURN_IF_ERROR(control.Broadcast(&id, sizeof(id), 0));
  auto comm = std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(control, static_cast<cudaStream_t>(compute_stream), control.rank(),
                           control.world_size(), timeout_s));
  SPW_CUDA_CHECK(cudaStreamCreateWithFlags(&comm->comm_stream_, cudaStreamNonBlocking));
  SPW_NCCL_CHECK(ncclCommInitRank(&comm->comm_, comm->world_size_, id, comm->rank_));
  if (timeout_s > 0) comm->watchdog_ = std::thread([c = comm.get()] { c->Watch(); });
  return std::unique_ptr<Communicator>(std::move(comm));
}

NcclCommunicator::~NcclCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (comm_stream_ != nullptr) cudaStreamSynchronize(comm_stream_);
  for (auto& [handle, f] : in_flight_) cudaEventDestroy(f.done);
  if (comm_ != nullptr) ncclCommDestroy(comm_);
  if (comm_stream_ != nullptr) cudaStreamDestroy(comm_stream_);
}

void NcclCommunicator::Abort(absl::Status why) {
  if (!aborted_.ok()) return;
  aborted_ = std::move(why);
  if (comm_ != nullptr) ncclCommAbort(comm_);
  comm_ = nullptr;
}

void NcclCommunicator::Watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(500));
    const auto now = std::chrono::steady_clock::now();
    for (auto& [handle, f] : in_flight_) {
      if (now - f.issued < timeout_ || cudaEventQuery(f.done) != cudaErrorNotReady) continue;
      Abort(absl::DeadlineExceededError(absl::StrFormat(
          "rank %d: an NCCL collective has not finished for %.0f s (trainer.comm_timeout_s): "
          "another rank has stopped taking part; the communicator is aborted",
          rank_, timeout_.count())));
      break;
    }
    Reap();
  }
}

void NcclCommunicator::Reap() {
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.waited && cudaEventQuery(it->second.done) != cudaErrorNotReady) {
      cudaEventDestroy(it->second.done);
      it = in_flight_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::Status NcclCommunicator::CheckAsyncError() {
  SPW_RETURN_IF_ERROR(aborted_);
  ncclResult_t async = ncclSuccess;
  SPW_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
  if (async != ncclSuccess) {
    Abort(NcclStatus(async, "NCCL communicator (a peer rank failed or the network did)"));
  }
  return aborted_;
}

absl::Status NcclCommunicator::BeginOnCommStream() {
  SPW_RETURN_IF_ERROR(aborted_);
  cudaEvent_t ready;
  SPW_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  absl::Status status = CudaStatus(cudaEventRecord(ready, compute_), "cudaEventRecord");
  if (status.ok()) {
    status = CudaStatus(cudaStreamWaitEvent(comm_stream_, ready, 0), "cudaStreamWaitEvent");
  }
  cudaEventDestroy(ready);  // released once the wait has happened
  return status;
}

absl::StatusOr<Communicator::Handle> NcclCommunicator::Finish() {
  Reap();
  cudaEvent_t done;
  SPW_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  absl::Status status = CudaStatus(cudaEventRecord(done, comm_stream_), "cudaEventRecord");
  if (!status.ok()) {
    cudaEventDestroy(done);
    return status;
  }
  const Handle handle = next_++;
  in_flight_.emplace(handle, InFlight{done, std::chrono::steady_clock::now()});
  return handle;
}

absl::Status NcclCommunicator::Wait(Handle handle) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_flight_.find(handle);
  if (it == in_flight_.end() || it->second.waited) {
    return absl::InvalidArgumentError(
        absl::StrCat("no started collective waiting has handle ", handle));
  }
  it->second.waited = true;
  SPW_CUDA_CHECK(cudaStreamWaitEvent(compute_, it->second.done, 0));
  return CheckAsyncError();
}

absl::StatusOr<Communicator::Handle> NcclCommunicator::StartAllGather(const float* send,
                                                                      float* recv,
                                                                      size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllGather", send, recv, n_per_rank));
  std::lock_guard<std::mutex> lock(mu_);
  SPW_RETURN_IF_ERROR(BeginOnCommStream());
  if (n_per_rank > 0) {
    SPW_NCCL_CHECK(ncclAllGather(send, recv, n_per_rank, ncclFloat, comm_, comm_stream_));
  }
  return Finish();
}

absl::StatusOr<Communicator::Handle> NcclCommunicator::StartReduceScatterSum(const float* send,
                                                                             float* recv,
                                                                             size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("ReduceScatterSum", send, recv, n_per_rank));
  std::lock_guard<std::mutex> lock(mu_);
  SPW_RETURN_IF_ERROR(BeginOnCommStream());
  if (n_per_rank > 0) {
    SPW_NCCL_CHECK(
        ncclReduceScatter(send, recv, n_per_rank, ncclFloat, ncclSum, comm_, comm_stream_));
  }
  return Finish();
}

absl::StatusOr<Communicator::Handle> NcclCommunicator::StartAllReduceSum(float* data, size_t n) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllReduceSum", data, data, n));
  std::lock_guard<std::mutex> lock(mu_);
  SPW_RETURN_IF_ERROR(BeginOnCommStream());
  if (n > 0) SPW_NCCL_CHECK(ncclAllReduce(data, data, n, ncclFloat, ncclSum, comm_, comm_stream_));
  return Finish();
}

absl::Status NcclCommunicator::AllReduceSum(float* data, size_t n) {
  SPW_ASSIGN_OR_RETURN(Handle h, StartAllReduceSum(data, n));
  return Wait(h);
}

absl::Status NcclCommunicator::AllGather(const float* send, float* recv, size_t n_per_rank) {
  SPW_ASSIGN_OR_RETURN(Handle h, StartAllGather(send, recv, n_per_rank));
  return Wait(h);
}

absl::Status NcclCommunicator::ReduceScatterSum(const float* send, float* recv, size_t n_per_rank) {
  SPW_ASSIGN_OR_RETURN(Handle h, StartReduceScatterSum(send, recv, n_per_rank));
  return Wait(h);
}

absl::Status NcclCommunicator::Broadcast(void* data, size_t bytes, int root) {
  SPW_RETURN_IF_ERROR(CheckBuffers("Broadcast", data, data, bytes));
  SPW_RETURN_IF_ERROR(CheckRoot(root));
  Handle h;
  {
    std::lock_guard<std::mutex> lock(mu_);
    SPW_RETURN_IF_ERROR(BeginOnCommStream());
    if (bytes > 0) {
      SPW_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclInt8, root, comm_, comm_stream_));
    }
    SPW_ASSIGN_OR_RETURN(h, Finish());
  }
  return Wait(h);
}

absl::Status NcclCommunicator::Send(const void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  Handle h;
  {
    std::lock_guard<std::mutex> lock(mu_);
    SPW_RETURN_IF_ERROR(BeginOnCommStream());
    SPW_NCCL_CHECK(ncclSend(data, bytes, ncclInt8, peer, comm_, comm_stream_));
    SPW_ASSIGN_OR_RETURN(h, Finish());
  }
  return Wait(h);
}

absl::Status NcclCommunicator::Recv(void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  Handle h;
  {
    std::lock_guard<std::mutex> lock(mu_);
    SPW_RETURN_IF_ERROR(BeginOnCommStream());
    SPW_NCCL_CHECK(ncclRecv(data, bytes, ncclInt8, peer, comm_, comm_stream_));
    SPW_ASSIGN_OR_RETURN(h, Finish());
  }
  return Wait(h);
}

absl::Status NcclCommunicator::Barrier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    SPW_RETURN_IF_ERROR(CheckAsyncError());
  }
  SPW_CUDA_CHECK(cudaStreamSynchronize(compute_));
  SPW_CUDA_CHECK(cudaStreamSynchronize(comm_stream_));
  return control_.Barrier();
}

absl::StatusOr<bool> NcclCommunicator::AllEqual(uint64_t value) { return control_.AllEqual(value); }

}  // namespace spillway
