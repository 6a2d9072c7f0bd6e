// A Communicator that runs another (host-memory) Communicator's calls on one worker thread, so
// that StartAllGather / StartReduceScatterSum / StartAllReduceSum overlap with compute on the
// calling thread (the MPI path's "non-blocking requests": MPI progresses only inside MPI calls,
// and our deterministic reductions are computed by the library itself, so a thread that sits in
// the blocking call is what makes them progress), and so that no call waits forever.
//
// Every call, blocking ones too, runs on the worker, one at a time, in the order made, so the
// wrapped communicator is never used by two threads at once (MPI_THREAD_SERIALIZED is enough).
// A blocking call returns its own result or, if one failed, the first failure among the
// started collectives not yet waited for (waiting for those afterwards returns OK).
//
// Timeout: when the worker finishes nothing for `timeout` while a caller waits (another rank
// stopped calling, hangs or died without taking the job down), the wait returns
// DeadlineExceeded and the communicator is broken: every later call fails at once, and the
// destructor leaves the stuck worker behind. The caller should then end the job
// (MpiCommunicator::AbortJob), since the other ranks are stuck too.
// Not thread-safe itself: one thread calls it, as for any Communicator.
#pragma once

#include <chrono>
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
  // `inner` (not owned) must outlive this object. `timeout` <= 0: wait forever.
  explicit ThreadedCommunicator(Communicator* inner, double timeout_s = 0.0);
  ~ThreadedCommunicator() override;  // waits for started collectives (unless broken)

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
  absl::StatusOr<Handle> Enqueue(std::function<absl::Status()> job);
  // Waits until every handle <= `last` has finished (or the timeout breaks the communicator).
  absl::Status WaitThrough(std::unique_lock<std::mutex>& lock, Handle last);
  // Runs `job` after everything started: its status, else the first unwaited failure.
  absl::Status RunInOrder(std::function<absl::Status()> job);
  void Run();

  Communicator* inner_;
  std::chrono::duration<double> timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Handle, std::function<absl::Status()>>> queue_;
  std::map<Handle, absl::Status> done_;  // finished, not yet waited for
  Handle next_ = 1;
  Handle finished_through_ = 0;  // every handle <= this has finished
  bool stop_ = false;
  absl::Status broken_;
  std::thread worker_;
};

}  // namespace spillway
