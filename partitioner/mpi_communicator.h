// A Communicator over MPI for host memory.
//
// Collectives run on a private duplicate of MPI_COMM_WORLD and user Send/Recv on another, so
// neither sees the other's messages nor those of other MPI users in the process. Both
// communicators have MPI_ERRORS_RETURN, so failures come back as Status (SPW_MPI_CHECK); a
// rank that dies still makes Open MPI abort the job (communicator.h, Failures).
//
// AllReduceSum and ReduceScatterSum are built on point-to-point messages: every element is
// summed in rank order by the one rank that owns it, then sent to the others, so the result is
// the same on all ranks whatever algorithm MPI would have picked. AllGather uses
// point-to-point too, Broadcast MPI_Bcast, AllEqual MPI_Allreduce of integer maxima (exact).
// MPI counts are int: every transfer is split into messages of at most Options::max_count
// elements (floats) or bytes.
#pragma once

#include <mpi.h>

#include <climits>
#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "partitioner/communicator.h"

namespace spillway {

class MpiCommunicator final : public Communicator {
 public:
  struct Options {
    // Largest count in one MPI message; smaller values are for tests of the splitting. Must
    // be the same on every rank.
    int max_count = INT_MAX;
    // Scratch of the reductions, in bytes (bounds the elements in flight per round).
    size_t scratch_bytes = size_t{64} << 20;
  };

  // Initialises MPI (MPI_THREAD_SERIALIZED) unless already done, and duplicates
  // MPI_COMM_WORLD; collective over all ranks. If this call initialised MPI, MPI_Finalize runs
  // when the last live MpiCommunicator is destroyed; MPI cannot be initialised again, so a
  // later Create() is FailedPrecondition. If MPI was initialised by someone else with less
  // than MPI_THREAD_SERIALIZED support, FailedPrecondition.
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(Options options);
  static absl::StatusOr<std::unique_ptr<Communicator>> Create() { return Create(Options()); }

  // Ends every rank of the job now (MPI_Abort on MPI_COMM_WORLD) with `exit_code`, for a rank
  // that cannot go on while others may be blocked in a collective. Returns only if MPI is not
  // running (then the caller simply exits).
  static void AbortJob(int exit_code);

  // Collective (frees the duplicated communicators): destroy on every rank in the same order.
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

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

 private:
  // Rank q owns elements [begin[q], begin[q + 1]) of a buffer split over the ranks.
  using Split = std::vector<size_t>;

  MpiCommunicator(Options options, MPI_Comm collectives, MPI_Comm messages, int rank,
                  int world_size);

  Split EvenSplit(size_t n) const;
  Split BlockSplit(size_t n_per_rank) const;
  // Elements per rank and message in one round of ReduceScatter or Gather.
  size_t BlockElements() const;
  size_t LongestPart(const Split& split) const;
  // out (this rank's part of `split`) = rank-order sum over ranks of their send's part.
  // out may be send + split[rank_] (in place).
  absl::Status ReduceScatter(const float* send, float* out, const Split& split);
  // Each rank's part of data (by `split`) is sent to every other rank, in place.
  absl::Status Gather(float* data, const Split& split);

  Options options_;
  MPI_Comm collectives_;
  MPI_Comm messages_;
  int rank_ = 0;
  int world_size_ = 1;
  std::vector<float> scratch_;
  std::vector<MPI_Request> requests_;
};

}  // namespace spillway
