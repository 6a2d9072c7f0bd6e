// The training state of one Unit on this rank: one flat buffer per kind of state, all with the
// Unit's layout. With world size 1 and no offload (the only mode built so far) every buffer
// is the whole Unit, fp32, in the backend's tier: the parameters are their own master copy.
// ZeRO stages shrink `grads`, `exp_avg` and `exp_avg_sq` (and at stage 3 `params`) to this
// rank's shard (partitioner/shard.h); offload/ moves them between tiers.
#pragma once

#include "absl/status/statusor.h"
#include "core/unit_layout.h"
#include "offload/buffer.h"

namespace spillway {

struct UnitState {
  UnitLayout layout;
  Buffer params;      // (layout.numel()) fp32
  Buffer grads;       // (layout.numel()) fp32, accumulated over micro-batches
  Buffer exp_avg;     // (layout.numel()) fp32, AdamW first moment
  Buffer exp_avg_sq;  // (layout.numel()) fp32, AdamW second moment

  // Allocates all four buffers in `tier`, zeroed.
  static absl::StatusOr<UnitState> Allocate(UnitLayout layout, Tier tier);

  float* param(const TensorSpec& t) { return params.as<float>() + t.offset; }
  float* grad(const TensorSpec& t) { return grads.as<float>() + t.offset; }
  size_t numel() const { return layout.numel(); }
};

}  // namespace spillway
