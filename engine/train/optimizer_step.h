// One optimizer step over every Unit: global gradient norm, clipping, AdamW on this rank's
// part, and the parameter all-gather that ZeRO stages 1-2 need.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "engine/config/config.h"
#include "engine/model/model.h"
#include "engine/train/external_optimizer_state.h"
#include "kernels/ops.h"
#include "partitioner/communicator.h"

namespace spillway {

class OffloadedOptimizer;

struct OptimizerStepResult {
  double grad_norm = 0.0;   // global L2 norm of all (unscaled) gradients, before clipping
  float clip_scale = 1.0f;  // factor applied to the unscaled gradients (1 when not clipped)
  bool skipped = false;     // the norm was not finite and the step was skipped (no update)
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
// updated parameters are copied back to the backend. With `external`, the master copy and
// moments live there instead (on NVMe, or in a compact format: external_optimizer_state.h) and
// AdamW runs through it one Unit at a time. With `offload`, the CPU step is overlapped with
// the backward (engine/train/offload_optimizer.h, which then owns the `external` calls); in its
// delayed mode the parameters come back a step later.
// Where AdamW updates a Unit's parameters whole in the backend, it writes the model's bf16
// copy of them too (UnitState::weight_copy), which the next forward then reads as it is;
// AdamWStep (for a pipeline, which moves parameters after it) does not.
//
// CopyParamsToOffloadMaster: after the parameters were set from outside the optimizer
// (initialisation, a checkpoint), the offloaded master copies take them, and the weight copies
// are rounded anew by the next forward.
absl::Status CopyParamsToOffloadMaster(Model& model, kernels::Ops& ops,
                                       ExternalOptimizerState* external = nullptr);

absl::StatusOr<OptimizerStepResult> OptimizerStep(Model& model, kernels::Ops& ops,
                                                  Communicator& data, Communicator& control,
                                                  const OptimizerConfig& opt, double lr,
                                                  double max_grad_norm, int64_t step,
                                                  ExternalOptimizerState* external = nullptr,
                                                  OffloadedOptimizer* offload = nullptr);

// Delayed offload: uploads the update in flight (OffloadedOptimizer::Flush) and gathers what
// stages 1-2 shard, so that the backend holds the newest parameters. No-op otherwise.
absl::Status FlushOffloadedStep(Model& model, kernels::Ops& ops, Communicator& data,
                                OffloadedOptimizer* offload);

// AdamW's hyper-parameters for `step` (1-based) at learning rate `lr`; weight decay and
// grad_scale are left at their defaults.
kernels::AdamWParams AdamWParamsFor(const OptimizerConfig& opt, double lr, int64_t step);

// One AdamW step on the CPU over Unit `unit`'s offloaded part [update_begin, update_end): the
// master copy, the gradient copy and the moments in the offload tier, weight decay per tensor
// as TensorSpec::weight_decay says (p.weight_decay is ignored). Every offload tier calls this.
void StepOffloadedShard(UnitState& unit, const OptimizerConfig& opt, kernels::AdamWParams p);

// OptimizerStep in two halves, so that the caller reads the sum of squares back together with
// other step scalars (the loss) in one host wait:
// AddGradSumSquares adds the sum of squares of this rank's gradients (whole at stages 0-1,
// its shards at 2-3) of the Units `units` (empty: all; a pipeline stage passes its own) to
// *sum_squares, a double in the backend's memory (no wait). GradSumSquares: the same into a
// scalar of its own, read back (one wait).
void AddGradSumSquares(Model& model, kernels::Ops& ops, double* sum_squares,
                       std::span<const int> units = {});
absl::StatusOr<double> GradSumSquares(Model& model, kernels::Ops& ops, std::span<const int> units);

// The pieces ApplyOptimizerStep is made of, for callers that sum the norm themselves (a
// pipeline adds its stages' sums of squares): torch's clipping factor for a global norm, and
// AdamW over the Units `units` with the gradients multiplied by `grad_scale` (clipping and
// loss-scale unscaling together), followed by the stage 1-2 all-gather. It leaves the Units'
// weight copies to the next forward (the pipeline moves parameters between steps).
float ClipScale(double grad_norm, double max_grad_norm);
absl::Status AdamWStep(Model& model, kernels::Ops& ops, Communicator& data,
                       const OptimizerConfig& opt, double lr, float grad_scale, int64_t step,
                       std::span<const int> units, ExternalOptimizerState* external = nullptr);

// How the gradients were scaled: they hold loss_scale times the true gradients (fp16 loss
// scaling; 1 otherwise). With skip_non_finite, a norm that is not finite (an overflow) skips
// the update (result.skipped); without it the update is applied as it comes.
struct GradScaling {
  double loss_scale = 1.0;
  bool skip_non_finite = false;
};

// The rest of OptimizerStep given this rank's sum of squares (the value AddGradSumSquares
// accumulated): global norm, clipping, unscaling, AdamW and the all-gather.
absl::StatusOr<OptimizerStepResult> ApplyOptimizerStep(
    Model& model, kernels::Ops& ops, Communicator& data, Communicator& control,
    const OptimizerConfig& opt, double lr, double max_grad_norm, int64_t step,
    double local_sum_squares, const GradScaling& scaling = {},
    ExternalOptimizerState* external = nullptr, OffloadedOptimizer* offload = nullptr);

}  // namespace spillway
