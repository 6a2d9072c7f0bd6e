// One optimizer step over every Unit: global gradient norm, clipping, AdamW on this rank's
// part, and the parameter all-gather that ZeRO stages 1-2 need.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "engine/config/config.h"
#include "engine/model/model.h"
#include "kernels/ops.h"
#include "partitioner/communicator.h"

namespace spillway {

struct OptimizerStepResult {
  double grad_norm = 0.0;   // global L2 norm of all gradients, before clipping
  float clip_scale = 1.0f;  // factor applied to the gradients (1 when not clipped)
};

// The gradients must be final: summed over ranks (the model's loss scale of 1/(accumulation *
// world size) makes the sum the global mean) by the model's UnitResidency: whole on every rank
// at stages 0-1, this rank's shard at stages 2-3. Clips them to a global L2 norm of
// `max_grad_norm` (0: no clipping; at stages 2-3 the shards' sums of squares are added over
// ranks through `control`, a host-memory communicator) and applies one AdamW step (`step` is
// 1-based) at learning rate `lr` to this rank's part of every tensor (all of it at stage 0),
// with weight decay only where TensorSpec::weight_decay is set (as torch param groups). At
// stages 1-2 the updated shards are then all-gathered through `data` (the backend's memory),
// so every rank ends with all updated parameters; at stage 3 each rank keeps its shard.
// With the optimizer offloaded (UnitState::optimizer_offloaded), AdamW runs on the CPU over
// the offload tier's master copy and moments, bitwise equal to the backend's AdamW, and the
// updated parameters are copied back to the backend.
//
// CopyParamsToOffloadMaster: after the parameters were set from outside the optimizer
// (initialisation, a checkpoint), the offloaded master copies take them. No-op otherwise.
absl::Status CopyParamsToOffloadMaster(Model& model, kernels::Ops& ops);

// OptimizerStep's parts, over the Units `units` only (all of them, or a pipeline stage's):
// the sum of squares of the gradients this rank holds (whole, or its shards at stages 2-3),
// torch's clipping factor for a global norm, and AdamW followed by the stage 1-2 all-gather.
double GradSumSquares(Model& model, kernels::Ops& ops, std::span<const int> units);
float ClipScale(double grad_norm, double max_grad_norm);
absl::Status AdamWStep(Model& model, kernels::Ops& ops, Communicator& data,
                       const OptimizerConfig& opt, double lr, float clip_scale, int64_t step,
                       std::span<const int> units);

absl::StatusOr<OptimizerStepResult> OptimizerStep(Model& model, kernels::Ops& ops,
                                                  Communicator& data, Communicator& control,
                                                  const OptimizerConfig& opt, double lr,
                                                  double max_grad_norm, int64_t step);

}  // namespace spillway
