// A Communicator that runs another (host-memory) Communicator's collectives on one worker
// thread, so that StartAllGather / StartReduceScatterSum / StartAllReduceSum overlap with
// compute on the calling thread (the MPI path's "non-blocking requests": MPI progresses only
// inside MPI calls, and our deterministic reductions are computed by the library itself, so a
// thread that sits in the blocking call is what makes them progress).
//
// Started collectives run one at a time, in the order started. Every blocking call first waits
// for all of them (reporting the first failure among those not yet waited for; waiting for a
// handle after that returns OK) and then runs on the caller's thread, so the wrapped communicator
// is never used by two threads at once (MPI_THREAD_SERIALIZED is enough). Not thread-safe itself:
// one thread calls it, as for any Communicator.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "partitioner/communicator.h"

namespace spillway {

class ThreadedCommunicator final : public Communicator {
 public:
  // `inner` (not owned) must outlive this object.
  explicit ThreadedCommunicator(Communicator* inner);
  ~ThreadedCommunicator() override;  // waits for started collectives

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }

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
  Handle Enqueue(std::function<absl::Status()> job);
  // Waits for every started collective; the first failure among those not yet waited for.
  absl::Status Drain();
  void Run();

  Communicator* inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Handle, std::function<absl::Status()>>> queue_;
  std::map<Handle, absl::Status> done_;  // finished, not yet waited for
  Handle next_ = 1;
  Handle finished_through_ = 0;  // every handle <= this has finished
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace spillway
