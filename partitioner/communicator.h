// Collectives and point-to-point transfers between the ranks of a job.
//
// Implementations: Single() below (one process, no MPI), MpiCommunicator for host memory
// (partitioner/mpi_communicator.h), ThreadedCommunicator (runs another one's collectives on a
// thread, so the Start calls overlap with host compute), NcclCommunicator for GPU memory. Pointers
// are in the memory the implementation serves (host for Single and MPI).
//
// Ordering: every call except the Start ones below is blocking. It returns when this rank's part is
// done and every buffer it was given may be reused; a collective does not promise that other ranks
// have returned. Every rank must make the same collective calls in the same order with the same
// sizes (n, n_per_rank, bytes) and root; a mismatch deadlocks or fails, and is not always detected.
// Calls must come from one thread at a time.
//
// Sizes: counts are elements for float calls and bytes for void* calls, of any size_t value
// (implementations split what their transport cannot send at once). Zero-length collectives
// return at once without communicating; zero-byte Send/Recv still pair up.
//
// Determinism: AllReduceSum and ReduceScatterSum add the ranks' values element by element in
// rank order, ((x_0 + x_1) + x_2) + ... + x_{N-1}, on every rank and in every run, so results
// are bitwise identical across ranks and runs and equal to a single rank adding the same N
// values in that order. (MPI itself only recommends, not requires, that a reduction give the
// same result for the same inputs, and its association order depends on the algorithm the
// library picks for a message size and rank count; MpiCommunicator therefore does its own
// sums.)
//
// Failures: a failed transfer returns a non-OK Status on the rank that saw it. There is no
// timeout: a rank that dies makes Open MPI abort the whole job (mpirun's default); a rank that
// hangs or skips a collective hangs the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

class Communicator {
 public:
  virtual ~Communicator() = default;

  // A world of one rank: collectives are copies (or nothing), Send/Recv have no peer.
  static std::unique_ptr<Communicator> Single();

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // data (n) becomes the sum over ranks of every rank's data.
  virtual absl::Status AllReduceSum(float* data, size_t n) = 0;
  // recv (world_size * n_per_rank) gets rank r's send (n_per_rank) at r * n_per_rank.
  // In place: send == recv + rank() * n_per_rank. Otherwise send and recv must not overlap.
  virtual absl::Status AllGather(const float* send, float* recv, size_t n_per_rank) = 0;
  // send (world_size * n_per_rank); recv (n_per_rank) gets the sum over ranks of their send's
  // part [rank() * n_per_rank, (rank() + 1) * n_per_rank). In place: recv == send + rank() *
  // n_per_rank. Otherwise send and recv must not overlap.
  virtual absl::Status ReduceScatterSum(const float* send, float* recv, size_t n_per_rank) = 0;
  // data (bytes) on every rank becomes root's data.
  virtual absl::Status Broadcast(void* data, size_t bytes, int root) = 0;
  // Sends `bytes` to `peer` (!= rank()), matched by the peer's Recv with this rank and tag.
  // Messages between two ranks with one tag arrive in the order sent. Blocking: pair sends and
  // receives so that no cycle of ranks all sends first (e.g. even ranks send first in a ring).
  // 0 <= tag <= 32767.
  virtual absl::Status Send(const void* data, size_t bytes, int peer, int tag) = 0;
  // Receives exactly `bytes` from `peer` (!= rank()); a message of another size is an error.
  virtual absl::Status Recv(void* data, size_t bytes, int peer, int tag) = 0;
  virtual absl::Status Barrier() = 0;
  // Whether every rank passed the same value (e.g. a hash of the config, checked at start).
  virtual absl::StatusOr<bool> AllEqual(uint64_t value) = 0;

  // Asynchronous collectives, for overlapping communication with compute. A Start call
  // returns at once; the collective begins after all work already issued to the compute
  // backend whose memory this communicator serves (host memory: at once; GPU memory: after the
  // compute stream's work so far), runs after the collectives started before it, and its
  // buffers must stay untouched until Wait. Wait(h) makes work issued afterwards see the result
  // (host memory: returns when it is done; GPU memory: orders the compute stream after it
  // without blocking the host) and reports its failure. Wait each handle once. Blocking calls
  // wait for every started collective first. This base class runs them at once, blocking.
  using Handle = uint64_t;
  virtual absl::StatusOr<Handle> StartAllGather(const float* send, float* recv, size_t n_per_rank);
  virtual absl::StatusOr<Handle> StartReduceScatterSum(const float* send, float* recv,
                                                       size_t n_per_rank);
  virtual absl::StatusOr<Handle> StartAllReduceSum(float* data, size_t n);
  virtual absl::Status Wait(Handle handle);

 protected:
  // InvalidArgument unless 0 <= root < world_size().
  absl::Status CheckRoot(int root) const;
  // InvalidArgument unless peer is another rank and 0 <= tag <= kMaxTag.
  absl::Status CheckPeer(int peer, int tag) const;
  // InvalidArgument for a null pointer with a non-zero size, or world_size() * n_per_rank
  // overflowing size_t.
  absl::Status CheckBuffers(absl::string_view what, const void* a, const void* b,
                            size_t n_per_rank) const;

  // The smallest MPI_TAG_UB the MPI standard allows; NCCL has no tags.
  static constexpr int kMaxTag = 32767;
};

}  // namespace spillway
