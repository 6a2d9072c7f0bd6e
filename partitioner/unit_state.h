// The training state of one Unit on this rank: one flat buffer per kind of state, all with the
// Unit's layout, fp32, in one tier (the backend's): the parameters are their own master copy.
//
// Sharding (ZeRO, partitioner/shard.h): `shard` is this rank's part of the Unit, the same split
// for every kind of state. `params` and `grads` are whole Units, padded to
// shard.padded_numel so that all-gathers and reduce-scatters move equal parts. The AdamW
// moments are whole too (stage 0), or only this rank's shard (stage 1: `optimizer_sharded`).
// The padding is zero and belongs to no tensor.
#pragma once

#include "absl/status/statusor.h"
#include "core/unit_layout.h"
#include "offload/buffer.h"
#include "partitioner/shard.h"

namespace spillway {

// How a rank holds its state.
struct ShardingPlan {
  int world_size = 1;
  int rank = 0;
  bool shard_optimizer_state = false;  // ZeRO stage >= 1
};

struct UnitState {
  UnitLayout layout;
  ShardRange shard;  // this rank's part of the padded flat buffer
  bool optimizer_sharded = false;
  Buffer params;      // (shard.padded_numel) fp32
  Buffer grads;       // (shard.padded_numel) fp32, accumulated over micro-batches
  Buffer exp_avg;     // AdamW first moment: (shard.padded_numel), or (shard.shard_numel) if
                      // optimizer_sharded, then element i is flat element shard.begin + i
  Buffer exp_avg_sq;  // AdamW second moment, like exp_avg

  // Allocates all four buffers in `tier`, zeroed.
  static absl::StatusOr<UnitState> Allocate(UnitLayout layout, Tier tier,
                                            const ShardingPlan& plan = {});

  float* param(const TensorSpec& t) { return params.as<float>() + t.offset; }
  float* grad(const TensorSpec& t) { return grads.as<float>() + t.offset; }
  size_t numel() const { return layout.numel(); }
  // The AdamW moment element that holds flat element `i` (i within the optimizer's range).
  size_t optimizer_index(size_t i) const { return optimizer_sharded ? i - shard.begin : i; }
};

}  // namespace spillway
