#include "engine/model/residual_stream.h"

#include <utility>

#include "core/status.h"

namespace spillway {

absl::StatusOr<ResidualStream> ResidualStream::Create(int blocks, size_t numel, kernels::Ops& ops,
                                                      bool offload) {
  if (blocks < 1) return absl::InvalidArgumentError("ResidualStream: no blocks");
  ResidualStream r;
  r.ops_ = &ops;
  r.blocks_ = blocks;
  r.numel_ = numel;
  r.offload_ = offload;
  const Tier tier = ops.memory_tier();
  SPW_ASSIGN_OR_RETURN(r.backend_, Buffer::Allocate(PlannedBackendBytes(blocks, numel, offload),
                                                    tier, "residual-stream activations"));
  r.ptr_.assign(blocks + 1, nullptr);
  if (!offload) {
    for (int l = 0; l <= blocks; ++l) r.ptr_[l] = r.backend_.as<float>() + l * numel;
    return r;
  }
  SPW_ASSIGN_OR_RETURN(r.host_,
                       Buffer::Allocate(static_cast<size_t>(blocks) * numel * sizeof(float),
                                        tier == Tier::kDevice ? Tier::kPinnedHost : Tier::kHost,
                                        "offloaded activation checkpoints"));
  r.ptr_[blocks] = r.backend_.as<float>() + kSlots * numel;
  return r;
}

size_t ResidualStream::PlannedBackendBytes(int blocks, size_t numel, bool offload) {
  return (offload ? kSlots + 1 : static_cast<size_t>(blocks) + 1) * numel * sizeof(float);
}

void ResidualStream::BeginForward() {
  if (!offload_) return;
  ops_->ComputeAfterCopies(down_[0]);
  ptr_[0] = Slot(0);
  holds_[0] = 0;
}

void ResidualStream::ForwardBlock(int l) {
  if (!offload_) return;
  const int slot = l % kSlots;
  down_[slot] = ops_->CopyToHostAsync(Host(l), Slot(l), numel_ * sizeof(float));
  const int next = l + 1;
  if (next == blocks_) return;
  ops_->ComputeAfterCopies(down_[next % kSlots]);
  ptr_[next] = Slot(next);
  holds_[next % kSlots] = next;
}

void ResidualStream::BackwardBlock(int l) {
  if (!offload_) return;
  if (holds_[l % kSlots] != l) {  // not prefetched: the top block of a shallow model
    up_[l % kSlots] = ops_->CopyToBackendAsync(Slot(l), Host(l), numel_ * sizeof(float));
    holds_[l % kSlots] = l;
  }
  ops_->ComputeAfterCopies(up_[l % kSlots]);
  ptr_[l] = Slot(l);
  // The recompute rewrites array l+1's values (or array L, kept in the backend) there.
  if (l + 1 < blocks_) {
    ptr_[l + 1] = Slot(l + 1);
    holds_[(l + 1) % kSlots] = l + 1;
  }
  if (l > 0 && holds_[(l - 1) % kSlots] != l - 1) {
    up_[(l - 1) % kSlots] =
        ops_->CopyToBackendAsync(Slot(l - 1), Host(l - 1), numel_ * sizeof(float));
    holds_[(l - 1) % kSlots] = l - 1;
  }
}

}  // namespace spillway
