// A Communicator over NCCL for GPU memory: one rank per GPU, every pointer a device pointer of
// this rank's GPU (the one current when Create() ran).
//
// All NCCL work runs on one communication stream of its own. A collective is ordered after the
// compute stream's work issued so far (an event), and work the compute stream gets after
// Wait() (or after a blocking call returns) is ordered after the collective (an event again):
// the host never waits, except in Barrier(). "Blocking" calls are Start + Wait: they return
// once the collective is ordered before later compute work, which is when their buffers may be
// used by it (not by the host: read results through the backend's copies).
//
// Sums are NCCL's (ring or tree order, chosen by NCCL), the same on every rank but not in rank
// order as MpiCommunicator's. Failures NCCL detects asynchronously (a peer gone, a network
// error) are polled in Wait and Barrier; the communicator is then aborted and every later call
// fails. A watchdog thread aborts it too when a collective has not finished `timeout_s` after
// it was issued (another rank stopped taking part): the GPU work waiting on it then ends and
// the next call reports DeadlineExceeded. A rank that dies under mpirun ends the whole job
// (Open MPI's default).
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "partitioner/communicator.h"

namespace spillway {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `control`'s ranks (a host communicator, e.g. MPI): rank 0 creates the NCCL
  // unique id, `control` broadcasts it, and every rank joins on its current CUDA device.
  // `compute_stream` (a cudaStream_t; kernels::Ops::native_stream()) must outlive this object.
  // `timeout_s` <= 0: no watchdog.
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(Communicator& control,
                                                              void* compute_stream,
                                                              double timeout_s = 0.0);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }

  absl::Status AllReduceSum(float* data, size_t n) override;
  absl::Status AllGather(const float* send, float* recv, size_t n_per_rank) override;
  absl::Status ReduceScatterSum(const float* send, float* recv, size_t n_per_rank) override;
  absl::Status Broadcast(void* data, size_t bytes, int root) override;
  absl::Status Send(const void* data, size_t bytes, int peer, int tag) override;
  absl::Status Recv(void* data, size_t bytes, int peer, int tag) override;
  absl::Status Barrier() override;
  absl::StatusOr<bool> AllEqual(uint64_t value) override;

  absl::StatusOr<Handle> StartAllGather(const float* send, float* recv, size_t n_per_rank) override;
  absl::StatusOr<Handle> StartReduceScatterSum(const float* send, float* recv,
                                               size_t n_per_rank) override;
  absl::StatusOr<Handle> StartAllReduceSum(float* data, size_t n) override;
  absl::Status Wait(Handle handle) override;

 private:
  struct InFlight {
    cudaEvent_t done;
    std::chrono::steady_clock::time_point issued;
    bool waited = false;
  };

  NcclCommunicator(Communicator& control, cudaStream_t compute, int rank, int world_size,
                   double timeout_s)
      : control_(control),
        compute_(compute),
        rank_(rank),
        world_size_(world_size),
        timeout_(timeout_s) {}
  // Orders the communication stream after the compute stream's work so far. Needs mu_.
  absl::Status BeginOnCommStream();
  // Records the end of the collective just issued; its handle. Needs mu_.
  absl::StatusOr<Handle> Finish();
  absl::Status CheckAsyncError();  // needs mu_
  void Abort(absl::Status why);    // needs mu_
  // Destroys the events of finished, waited-for collectives. Needs mu_.
  void Reap();
  void Watch();

  Communicator& control_;
  cudaStream_t compute_;
  cudaStream_t comm_stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
  int world_size_ = 1;
  std::chrono::duration<double> timeout_;
  std::mutex mu_;  // guards comm_ (the watchdog may abort it) and the fields below
  std::condition_variable stop_cv_;
  bool stop_ = false;
  Handle next_ = 1;
  std::map<Handle, InFlight> in_flight_;
  absl::Status aborted_;
  std::thread watchdog_;
};

}  // namespace spillway
