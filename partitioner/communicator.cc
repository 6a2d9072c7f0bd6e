#include "partitioner/communicator.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {
namespace {

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }

  absl::Status AllReduceSum(float* data, size_t n) override {
    return CheckBuffers("AllReduceSum", data, data, n);
  }
  absl::Status AllGather(const float* send, float* recv, size_t n_per_rank) override {
    SPW_RETURN_IF_ERROR(CheckBuffers("AllGather", send, recv, n_per_rank));
    if (send != recv) std::copy_n(send, n_per_rank, recv);
    return absl::OkStatus();
  }
  absl::Status ReduceScatterSum(const float* send, float* recv, size_t n_per_rank) override {
    SPW_RETURN_IF_ERROR(CheckBuffers("ReduceScatterSum", send, recv, n_per_rank));
    if (send != recv) std::copy_n(send, n_per_rank, recv);
    return absl::OkStatus();
  }
  absl::Status Broadcast(void* data, size_t bytes, int root) override {
    SPW_RETURN_IF_ERROR(CheckBuffers("Broadcast", data, data, bytes));
    return CheckRoot(root);
  }
  absl::Status Send(const void* data, size_t bytes, int peer, int tag) override {
    return CheckPeer(peer, tag);
  }
  absl::Status Recv(void* data, size_t bytes, int peer, int tag) override {
    return CheckPeer(peer, tag);
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::StatusOr<bool> AllEqual(uint64_t value) override { return true; }
};

}  // namespace

std::unique_ptr<Communicator> Communicator::Single() {
  return std::make_unique<SingleCommunicator>();
}

absl::StatusOr<Communicator::Handle> Communicator::StartAllGather(const float* send, float* recv,
                                                                  size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(AllGather(send, recv, n_per_rank));
  return Handle{0};
}

absl::StatusOr<Communicator::Handle> Communicator::StartReduceScatterSum(const float* send,
                                                                         float* recv,
                                                                         size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(ReduceScatterSum(send, recv, n_per_rank));
  return Handle{0};
}

absl::StatusOr<Communicator::Handle> Communicator::StartAllReduceSum(float* data, size_t n) {
  SPW_RETURN_IF_ERROR(AllReduceSum(data, n));
  return Handle{0};
}

absl::Status Communicator::Wait(Handle handle) { return absl::OkStatus(); }

absl::Status Communicator::CheckRoot(int root) const {
  if (root >= 0 && root < world_size()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("root ", root, " is not a rank of a world of size ", world_size()));
}

absl::Status Communicator::CheckPeer(int peer, int tag) const {
  if (peer < 0 || peer >= world_size() || peer == rank()) {
    return absl::InvalidArgumentError(absl::StrCat("peer ", peer, " is not another rank (rank ",
                                                   rank(), " of ", world_size(), ")"));
  }
  if (tag < 0 || tag > kMaxTag) {
    return absl::InvalidArgumentError(absl::StrCat("tag ", tag, " is outside [0, ", kMaxTag, "]"));
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckBuffers(absl::string_view what, const void* a, const void* b,
                                        size_t n_per_rank) const {
  if (n_per_rank == 0) return absl::OkStatus();
  if (a == nullptr || b == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": null buffer for ", n_per_rank));
  }
  if (n_per_rank > std::numeric_limits<size_t>::max() / static_cast<size_t>(world_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", n_per_rank, " per rank overflows for ", world_size(), " ranks"));
  }
  return absl::OkStatus();
}

}  // namespace spillway
