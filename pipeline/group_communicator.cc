#include "pipeline/group_communicator.h"

#include <algorithm>
#include <cstring>

#include "core/status.h"

namespace spillway::pipeline {

GroupCommunicator::GroupCommunicator(Communicator* parent, std::vector<int> members, int tag)
    : parent_(parent), members_(std::move(members)), tag_(tag) {
  rank_ = static_cast<int>(std::find(members_.begin(), members_.end(), parent->rank()) -
                           members_.begin());
}

absl::Status GroupCommunicator::Exchange(const void* mine, size_t bytes, std::vector<char>* all) {
  const int n = world_size();
  all->resize(bytes * n);
  if (bytes > 0) std::memcpy(all->data() + rank_ * bytes, mine, bytes);
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      if (rank_ != i && rank_ != j) continue;
      const int other = rank_ == i ? j : i;
      char* theirs = all->data() + other * bytes;
      if (rank_ == i) {
        SPW_RETURN_IF_ERROR(parent_->Send(mine, bytes, members_[other], tag_));
        SPW_RETURN_IF_ERROR(parent_->Recv(theirs, bytes, members_[other], tag_));
      } else {
        SPW_RETURN_IF_ERROR(parent_->Recv(theirs, bytes, members_[other], tag_));
        SPW_RETURN_IF_ERROR(parent_->Send(mine, bytes, members_[other], tag_));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status GroupCommunicator::AllReduceSum(float* data, size_t n) {
  if (world_size() == 1 || n == 0) return absl::OkStatus();
  std::vector<char> all;
  SPW_RETURN_IF_ERROR(Exchange(data, n * sizeof(float), &all));
  const float* x = reinterpret_cast<const float*>(all.data());
  for (size_t e = 0; e < n; ++e) {
    float sum = x[e];
    for (int r = 1; r < world_size(); ++r) sum += x[r * n + e];
    data[e] = sum;
  }
  return absl::OkStatus();
}

absl::Status GroupCommunicator::AllGather(const float* send, float* recv, size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllGather", send, recv, n_per_rank));
  std::vector<char> all;
  SPW_RETURN_IF_ERROR(Exchange(send, n_per_rank * sizeof(float), &all));
  if (!all.empty()) std::memcpy(recv, all.data(), all.size());
  return absl::OkStatus();
}

absl::Status GroupCommunicator::ReduceScatterSum(const float* send, float* recv,
                                                 size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("ReduceScatterSum", send, recv, n_per_rank));
  std::vector<float> whole(send, send + n_per_rank * world_size());
  SPW_RETURN_IF_ERROR(AllReduceSum(whole.data(), whole.size()));
  std::copy_n(whole.data() + rank_ * n_per_rank, n_per_rank, recv);
  return absl::OkStatus();
}

absl::Status GroupCommunicator::Broadcast(void* data, size_t bytes, int root) {
  SPW_RETURN_IF_ERROR(CheckRoot(root));
  if (rank_ == root) {
    for (int r = 0; r < world_size(); ++r) {
      if (r != root) SPW_RETURN_IF_ERROR(parent_->Send(data, bytes, members_[r], tag_));
    }
    return absl::OkStatus();
  }
  return parent_->Recv(data, bytes, members_[root], tag_);
}

absl::Status GroupCommunicator::Send(const void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  return parent_->Send(data, bytes, members_[peer], tag);
}

absl::Status GroupCommunicator::Recv(void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  return parent_->Recv(data, bytes, members_[peer], tag);
}

absl::Status GroupCommunicator::Barrier() {
  float one = 1.0f;
  return AllReduceSum(&one, 1);
}

absl::StatusOr<bool> GroupCommunicator::AllEqual(uint64_t value) {
  std::vector<char> all;
  SPW_RETURN_IF_ERROR(Exchange(&value, sizeof(value), &all));
  for (int r = 1; r < world_size(); ++r) {
    if (std::memcmp(all.data(), all.data() + r * sizeof(value), sizeof(value)) != 0) return false;
  }
  return true;
}

}  // namespace spillway::pipeline
