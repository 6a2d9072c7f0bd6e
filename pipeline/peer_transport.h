// Asynchronous point-to-point transfers between pipeline stages: activations forward,
// activation gradients backward. A Start call returns at once; the buffer must stay untouched
// (send) or unread (receive) until Wait on its handle returns. Messages between two ranks with
// one tag arrive in the order started. Wait each handle once.
//
// MpiPeerTransport: MPI_Isend / MPI_Irecv on a private duplicate of MPI_COMM_WORLD (host
// memory), so these messages never meet the Communicator's. Calls must come from the thread
// that makes the job's other MPI calls (MPI_THREAD_SERIALIZED).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace spillway::pipeline {

class PeerTransport {
 public:
  using Handle = uint64_t;
  virtual ~PeerTransport() = default;
  virtual absl::StatusOr<Handle> StartSend(const void* data, size_t bytes, int peer, int tag) = 0;
  // A message of another size than `bytes` is an error at Wait.
  virtual absl::StatusOr<Handle> StartRecv(void* data, size_t bytes, int peer, int tag) = 0;
  virtual absl::Status Wait(Handle handle) = 0;
};

class MpiPeerTransport final : public PeerTransport {
 public:
  // Collective over MPI_COMM_WORLD; MPI must be initialised (MpiCommunicator::Create).
  static absl::StatusOr<std::unique_ptr<PeerTransport>> Create();
  // Collective (frees the duplicate): destroy on every rank, before MPI is finalised; waits
  // for transfers not yet waited for.
  ~MpiPeerTransport() override;

  absl::StatusOr<Handle> StartSend(const void* data, size_t bytes, int peer, int tag) override;
  absl::StatusOr<Handle> StartRecv(void* data, size_t bytes, int peer, int tag) override;
  absl::Status Wait(Handle handle) override;

 private:
  struct Pending {
    std::vector<MPI_Request> requests;  // one per message of at most INT_MAX bytes
    std::vector<int> counts;            // each message's expected bytes (receives)
    bool receive = false;
    int peer = 0;
  };
  explicit MpiPeerTransport(MPI_Comm comm) : comm_(comm) {}
  absl::StatusOr<Handle> Start(void* data, size_t bytes, int peer, int tag, bool receive);

  MPI_Comm comm_;
  Handle next_ = 1;
  std::map<Handle, Pending> pending_;
};

}  // namespace spillway::pipeline
