#include "pipeline/peer_transport.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "partitioner/mpi_check.h"

namespace spillway::pipeline {

absl::StatusOr<std::unique_ptr<PeerTransport>> MpiPeerTransport::Create() {
  int initialized = 0;
  SPW_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    return absl::FailedPreconditionError("pipeline transport: MPI is not initialised");
  }
  MPI_Comm comm;
  SPW_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  SPW_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  return std::unique_ptr<PeerTransport>(new MpiPeerTransport(comm));
}

MpiPeerTransport::~MpiPeerTransport() {
  while (!pending_.empty()) Wait(pending_.begin()->first).IgnoreError();
  MPI_Comm_free(&comm_);
}

absl::StatusOr<PeerTransport::Handle> MpiPeerTransport::Start(void* data, size_t bytes, int peer,
                                                              int tag, bool receive) {
  Pending p;
  p.receive = receive;
  p.peer = peer;
  char* bytes_at = static_cast<char*>(data);
  size_t offset = 0;
  do {
    const int count = static_cast<int>(std::min<size_t>(INT_MAX, bytes - offset));
    MPI_Request request;
    if (receive) {
      SPW_MPI_CHECK(MPI_Irecv(bytes_at + offset, count, MPI_BYTE, peer, tag, comm_, &request));
    } else {
      SPW_MPI_CHECK(MPI_Isend(bytes_at + offset, count, MPI_BYTE, peer, tag, comm_, &request));
    }
    p.requests.push_back(request);
    p.counts.push_back(count);
    offset += count;
  } while (offset < bytes);
  const Handle handle = next_++;
  pending_.emplace(handle, std::move(p));
  return handle;
}

absl::StatusOr<PeerTransport::Handle> MpiPeerTransport::StartSend(const void* data, size_t bytes,
                                                                  int peer, int tag) {
  return Start(const_cast<void*>(data), bytes, peer, tag, /*receive=*/false);
}

absl::StatusOr<PeerTransport::Handle> MpiPeerTransport::StartRecv(void* data, size_t bytes,
                                                                  int peer, int tag) {
  return Start(data, bytes, peer, tag, /*receive=*/true);
}

absl::Status MpiPeerTransport::Wait(Handle handle) {
  auto it = pending_.find(handle);
  if (it == pending_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline transport: unknown handle ", handle));
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  std::vector<MPI_Status> statuses(p.requests.size());
  SPW_MPI_CHECK(
      MPI_Waitall(static_cast<int>(p.requests.size()), p.requests.data(), statuses.data()));
  if (!p.receive) return absl::OkStatus();
  for (size_t i = 0; i < statuses.size(); ++i) {
    int received = 0;
    SPW_MPI_CHECK(MPI_Get_count(&statuses[i], MPI_BYTE, &received));
    if (received != p.counts[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pipeline transport: a message of ", received, " bytes from rank ", p.peer, " where ",
          p.counts[i], " were expected (the stages disagree on the activation shape)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace spillway::pipeline
