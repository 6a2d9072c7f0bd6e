#include "partitioner/nccl_communicator.h"

#include "absl/strings/str_cat.h"
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
                                                                       void* compute_stream) {
  if (compute_stream == nullptr) {
    return absl::InvalidArgumentError("NcclCommunicator needs the GPU backend's stream");
  }
  ncclUniqueId id{};
  if (control.rank() == 0) SPW_NCCL_CHECK(ncclGetUniqueId(&id));
  SPW_RETURN_IF_ERROR(control.Broadcast(&id, sizeof(id), 0));
  auto comm = std::unique_ptr<NcclCommunicator>(new NcclCommunicator(
      control, static_cast<cudaStream_t>(compute_stream), control.rank(), control.world_size()));
  SPW_CUDA_CHECK(cudaStreamCreateWithFlags(&comm->comm_stream_, cudaStreamNonBlocking));
  SPW_NCCL_CHECK(ncclCommInitRank(&comm->comm_, comm->world_size_, id, comm->rank_));
  return std::unique_ptr<Communicator>(std::move(comm));
}

NcclCommunicator::~NcclCommunicator() {
  for (auto& [handle, event] : started_) cudaEventDestroy(event);
  if (comm_stream_ != nullptr) cudaStreamSynchronize(comm_stream_);
  if (comm_ != nullptr) {
    if (aborted_.ok()) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
  }
  if (comm_stream_ != nullptr) cudaStreamDestroy(comm_stream_);
}

absl::Status NcclCommunicator::CheckAsyncError() {
  SPW_RETURN_IF_ERROR(aborted_);
  ncclResult_t async = ncclSuccess;
  SPW_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
  if (async != ncclSuccess) {
    aborted_ = NcclStatus(async, "NCCL communicator (a peer rank failed or the network did)");
    ncclCommAbort(comm_);
    comm_ = nullptr;
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
  cudaEvent_t done;
  SPW_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  absl::Status status = CudaStatus(cudaEventRecord(done, comm_stream_), "cudaEventRecord");
  if (!status.ok()) {
    cudaEventDestroy(done);
    return status;
  }
  const Handle handle = next_++;
  started_.emplace(handle, done);
  return handle;
}

absl::Status NcclCommunicator::Wait(Handle handle) {
  auto it = started_.find(handle);
  if (it == started_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("no started collective has handle ", handle));
  }
  cudaEvent_t done = it->second;
  started_.erase(it);
  absl::Status status = CudaStatus(cudaStreamWaitEvent(compute_, done, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(done);
  SPW_RETURN_IF_ERROR(status);
  return CheckAsyncError();
}

absl::StatusOr<Communicator::Handle> NcclCommunicator::StartAllGather(const float* send,
                                                                      float* recv,
                                                                      size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllGather", send, recv, n_per_rank));
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
  SPW_RETURN_IF_ERROR(BeginOnCommStream());
  if (n_per_rank > 0) {
    SPW_NCCL_CHECK(
        ncclReduceScatter(send, recv, n_per_rank, ncclFloat, ncclSum, comm_, comm_stream_));
  }
  return Finish();
}

absl::StatusOr<Communicator::Handle> NcclCommunicator::StartAllReduceSum(float* data, size_t n) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllReduceSum", data, data, n));
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
  SPW_RETURN_IF_ERROR(BeginOnCommStream());
  if (bytes > 0) {
    SPW_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclInt8, root, comm_, comm_stream_));
  }
  SPW_ASSIGN_OR_RETURN(Handle h, Finish());
  return Wait(h);
}

absl::Status NcclCommunicator::Send(const void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  SPW_RETURN_IF_ERROR(BeginOnCommStream());
  SPW_NCCL_CHECK(ncclSend(data, bytes, ncclInt8, peer, comm_, comm_stream_));
  SPW_ASSIGN_OR_RETURN(Handle h, Finish());
  return Wait(h);
}

absl::Status NcclCommunicator::Recv(void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  SPW_RETURN_IF_ERROR(BeginOnCommStream());
  SPW_NCCL_CHECK(ncclRecv(data, bytes, ncclInt8, peer, comm_, comm_stream_));
  SPW_ASSIGN_OR_RETURN(Handle h, Finish());
  return Wait(h);
}

absl::Status NcclCommunicator::Barrier() {
  SPW_RETURN_IF_ERROR(CheckAsyncError());
  SPW_CUDA_CHECK(cudaStreamSynchronize(compute_));
  SPW_CUDA_CHECK(cudaStreamSynchronize(comm_stream_));
  return control_.Barrier();
}

absl::StatusOr<bool> NcclCommunicator::AllEqual(uint64_t value) { return control_.AllEqual(value); }

}  // namespace spillway
