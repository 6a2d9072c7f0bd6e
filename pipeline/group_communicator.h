// A Communicator over a subset of another one's ranks (a pipeline stage's data-parallel group),
// built on the parent's blocking Send/Recv only.
//
// Collectives exchange whole buffers between every pair of members: pairs (i, j), i < j, are
// visited in lexicographic order, the lower member sending first, which no cycle of blocked
// sends can stall. Sums are then formed by every member alone in member order, so they are
// bitwise the same on all members (communicator.h's determinism rule). Traffic is
// (members - 1) x the buffer per member: meant for small groups.
// All messages use tag `tag` of the parent; no other traffic may use that tag between members.
#pragma once

#include <vector>

#include "partitioner/communicator.h"

namespace spillway::pipeline {

class GroupCommunicator final : public Communicator {
 public:
  // `members`: the parent's ranks in the group, ascending, including parent->rank().
  // `parent` must outlive this object.
  GroupCommunicator(Communicator* parent, std::vector<int> members, int tag);

  int rank() const override { return rank_; }
  int world_size() const override { return static_cast<int>(members_.size()); }

  absl::Status AllReduceSum(float* data, size_t n) override;
  absl::Status AllGather(const float* send, float* recv, size_t n_per_rank) override;
  absl::Status ReduceScatterSum(const float* send, float* recv, size_t n_per_rank) override;
  absl::Status Broadcast(void* data, size_t bytes, int root) override;
  absl::Status Send(const void* data, size_t bytes, int peer, int tag) override;
  absl::Status Recv(void* data, size_t bytes, int peer, int tag) override;
  absl::Status Barrier() override;
  absl::StatusOr<bool> AllEqual(uint64_t value) override;

 private:
  // Every member's `bytes` at `mine` lands in all[member * bytes .. ] (mine copied too).
  absl::Status Exchange(const void* mine, size_t bytes, std::vector<char>* all);

  Communicator* parent_;
  std::vector<int> members_;
  int tag_;
  int rank_ = 0;
};

}  // namespace spillway::pipeline
