// The training state of one Unit on this rank: one flat buffer per kind of state, fp32, in one
// tier (the backend's); the parameters are their own master copy.
//
// Sharding (ZeRO, partitioner/shard.h): `shard` is this rank's part of the Unit's padded flat
// range, the same split for every kind of state. What a rank stores, by stage:
//   state             stage 0   stage 1   stage 2   stage 3
//   params            whole     whole     whole     shard
//   grads             whole     whole     shard     shard
//   exp_avg/_sq       whole     shard     shard     shard
// "whole" buffers hold shard.padded_numel elements (flat element i at index i); "shard" buffers
// hold shard.shard_numel (flat element i at index i - shard.begin). Padding is zero and belongs
// to no tensor. With the optimizer offloaded (ShardingPlan::offload_optimizer), AdamW's part of
// the state moves to the offload tier (see offload_master).
//
// With the parameters offloaded (ShardingPlan::offload_params, stage 3), params and grads are
// shards in the offload tier: grads is the gradient AdamW reads (no offload_grads) and, unless
// the state is external, params is its master (no offload_master); the backend holds only the
// residency's working buffers. With the parameters on NVMe (ShardingPlan::params_in_master,
// external optimizer state) there is no params Buffer: the external state's fp32 master (on
// NVMe; with offload_optimizer.nvme_ratio below 1 the first Units' in CPU memory) is the
// parameter shard (UnitResidency reads it there), and parameters set from outside
// (initialisation, loading) wait in the gradient shard (incoming_params) until
// CopyParamsToOffloadMaster (engine/train/optimizer_step.h) writes them to the master.
//
// The model computes on the whole Unit through live_params / live_grads: for whole buffers these
// point at them; for sharded ones a partitioner/unit_residency.h working buffer holds the
// gathered parameters (stage 3) or the gradient being accumulated before its reduce-scatter
// (stages 2-3) while the Unit is in use, and they are null otherwise.
#pragma once

#include <algorithm>
#include <cstdint>

#include "absl/status/statusor.h"
#include "core/unit_layout.h"
#include "offload/buffer.h"
#include "partitioner/shard.h"

namespace spillway {

// How a rank holds its state.
struct ShardingPlan {
  int world_size = 1;
  int rank = 0;
  int stage = 0;  // zero_optimization.stage, 0-3
  // zero_optimization.offload_optimizer.device = "cpu": the optimizer's part of the state (an
  // fp32 master copy of the parameters it updates, a copy of their gradients, Adam m and v)
  // lives in `offload_tier` (pinned CPU memory for a GPU backend), and AdamW runs on the CPU.
  bool offload_optimizer = false;
  Tier offload_tier = Tier::kHost;
  // The offloaded master, m and v live outside the Buffers (on NVMe, or in a compact format:
  // engine/train/external_optimizer_state.h); only the gradient copy is in `offload_tier`.
  bool external_optimizer_state = false;
  // zero_optimization.offload_param.device = "cpu" (stage 3, offload_optimizer): parameter and
  // gradient shards in `offload_tier` too.
  bool offload_params = false;
  // offload_param.device = "nvme" (offload_params, external optimizer state on NVMe): the
  // parameter shards are the external state's fp32 master; no params Buffer.
  bool params_in_master = false;
  // offload_optimizer.ratio: Model::AddUnits offloads the optimizer of the last Units only
  // (partitioner/offload_split.h); UnitState::Allocate takes each Unit's plan as decided.
  double offload_ratio = 1.0;
};

struct UnitState {
  UnitLayout layout;
  ShardRange shard;  // this rank's part of the padded flat range
  int stage = 0;
  Buffer params;      // fp32 master parameters (see the table above)
  Buffer grads;       // fp32 gradients, accumulated over the micro-batches of a step
  Buffer exp_avg;     // AdamW first moment (in the offload tier when offloaded)
  Buffer exp_avg_sq;  // AdamW second moment (likewise)
  // Offloaded optimizer only, laid out like the moments: the fp32 master parameters AdamW
  // updates, and the gradients copied down for it. Empty otherwise. With external state,
  // exp_avg, exp_avg_sq and offload_master are empty and offload_grads also stages the updated
  // parameters on their way back to the backend.
  Buffer offload_master;
  Buffer offload_grads;
  float* live_params = nullptr;
  float* live_grads = nullptr;
  // The model's bf16 copy of the whole Unit's parameters for its matmuls (the model owns it;
  // null where it keeps none). weight_copy_current: AdamW stored the parameters it last wrote
  // there too (engine/train/optimizer_step.h), so a forward need not round them again. Whatever
  // else writes the parameters clears it: the optimizer step before it updates anything,
  // Model::SetUnitParams and FindParam, CopyParamsToOffloadMaster (after a load).
  uint16_t* weight_copy = nullptr;
  bool weight_copy_current = false;
  bool params_offloaded = false;    // ShardingPlan::offload_params
  bool params_in_master = false;    // ShardingPlan::params_in_master
  bool optimizer_external = false;  // offload_optimizer with external_optimizer_state

  // Allocates the buffers `plan.stage` keeps in `tier`, zeroed.
  static absl::StatusOr<UnitState> Allocate(UnitLayout layout, Tier tier,
                                            const ShardingPlan& plan = {});

  bool optimizer_sharded() const { return stage >= 1; }
  bool optimizer_offloaded() const { return params_offloaded || offload_grads.bytes() > 0; }
  bool optimizer_state_external() const { return optimizer_external; }
  // The offloaded optimizer's fp32 master parameters and gradient copy (optimizer_index
  // layout): offload_master / offload_grads, or params / grads when the parameters are offloaded.
  float* offload_master_data() { return (params_offloaded ? params : offload_master).as<float>(); }
  float* offload_grads_data() { return (params_offloaded ? grads : offload_grads).as<float>(); }
  // Where parameters set from outside the optimizer are written (laid out as params): params,
  // or with the parameters on NVMe the gradient shard, until the master takes them.
  Buffer& incoming_params() { return params_in_master ? grads : params; }
  // Elements of each optimizer-state array (moments, master, gradient copy) this rank keeps.
  size_t optimizer_numel() const {
    return optimizer_sharded() ? shard.shard_numel : shard.padded_numel;
  }
  bool grads_sharded() const { return stage >= 2; }
  bool params_sharded() const { return stage >= 3; }

  float* param(const TensorSpec& t) { return live_params + t.offset; }
  float* grad(const TensorSpec& t) { return live_grads + t.offset; }
  size_t numel() const { return layout.numel(); }
  // The flat range [begin, end) of real elements this rank updates: its shard (clipped to
  // numel) when the optimizer state is sharded, else the whole Unit.
  size_t update_begin() const;
  size_t update_end() const;
  // Where flat element `i` lives in params, grads and the AdamW moments (i must be stored).
  size_t param_index(size_t i) const { return params_sharded() ? i - shard.begin : i; }
  size_t grad_index(size_t i) const { return grads_sharded() ? i - shard.begin : i; }
  size_t optimizer_index(size_t i) const { return optimizer_sharded() ? i - shard.begin : i; }
};

// Calls fn(t, begin, end) for each tensor t of `unit` with the part [begin, end) of its flat
// range that lies in [lo, hi), skipping tensors outside it.
template <typename Fn>
void ForEachTensorPart(const UnitState& unit, size_t lo, size_t hi, Fn fn) {
  for (const TensorSpec& t : unit.layout.tensors()) {
    const size_t begin = std::max(lo, t.offset), end = std::min(hi, t.offset + t.numel);
    if (begin < end) fn(t, begin, end);
  }
}

}  // namespace spillway
