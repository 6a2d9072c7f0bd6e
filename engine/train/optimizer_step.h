// One optimizer step over every Unit: global gradient norm, clipping, AdamW.
#pragma once

#include <cstdint>

#include "engine/config/config.h"
#include "engine/model/gpt2.h"
#include "kernels/ops.h"

namespace spillway {

struct OptimizerStepResult {
  double grad_norm = 0.0;   // global L2 norm of all gradients, before clipping
  float clip_scale = 1.0f;  // factor applied to the gradients (1 when not clipped)
};

// Clips the gradients to a global L2 norm of `max_grad_norm` (0: no clipping) and applies one
// AdamW step (`step` is 1-based) at learning rate `lr` to every tensor of every Unit, with
// weight decay only on tensors whose TensorSpec::weight_decay is set (as torch param groups).
OptimizerStepResult OptimizerStep(Gpt2& model, kernels::Ops& ops, const OptimizerConfig& opt,
                                  double lr, double max_grad_norm, int64_t step);

}  // namespace spillway
