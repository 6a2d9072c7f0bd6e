// One optimizer step over every Unit: gradient reduction across ranks, global gradient norm,
// clipping, AdamW on this rank's part, and the parameter all-gather that sharding needs.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "engine/config/config.h"
#include "engine/model/gpt2.h"
#include "kernels/ops.h"
#include "partitioner/communicator.h"

namespace spillway {

struct OptimizerStepResult {
  double grad_norm = 0.0;   // global L2 norm of all gradients, before clipping
  float clip_scale = 1.0f;  // factor applied to the gradients (1 when not clipped)
};

// With several ranks, first sums every Unit's gradients across them (AllReduceSum; the
// model's loss scale of 1/(accumulation * world size) makes the sum the global mean), so every
// rank holds the same gradients. Then clips them to a global L2 norm of `max_grad_norm` (0: no
// clipping) and applies one AdamW step (`step` is 1-based) at learning rate `lr` to this rank's
// part of every tensor (all of it, or its shard when the Unit's optimizer state is sharded),
// with weight decay only where TensorSpec::weight_decay is set (as torch param groups).
// Sharded Units are then all-gathered, so every rank ends with all updated parameters.
// Communication needs host buffers (MPI); one rank communicates nothing.
absl::StatusOr<OptimizerStepResult> OptimizerStep(Gpt2& model, kernels::Ops& ops,
                                                  Communicator& comm, const OptimizerConfig& opt,
                                                  double lr, double max_grad_norm, int64_t step);

}  // namespace spillway
