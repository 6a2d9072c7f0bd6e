#include "engine/train/optimizer_step.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace spillway {

absl::StatusOr<OptimizerStepResult> OptimizerStep(Gpt2& model, kernels::Ops& ops,
                                                  Communicator& comm, const OptimizerConfig& opt,
                                                  double lr, double max_grad_norm, int64_t step) {
  const bool distributed = comm.world_size() > 1;
  if (distributed) {
    SPW_RETURN_IF_ERROR(ops.Synchronize());  // the gradients are complete
    for (int u = 0; u < model.num_units(); ++u) {
      UnitState& unit = model.unit(u);
      SPW_RETURN_IF_ERROR(comm.AllReduceSum(unit.grads.as<float>(), unit.numel()));
    }
  }

  OptimizerStepResult result;
  double sum_squares = 0.0;
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    for (const TensorSpec& t : unit.layout.tensors()) {
      double s = 0.0;
      ops.SumSquares(&s, unit.grad(t), t.numel);
      sum_squares += s;
    }
  }
  result.grad_norm = std::sqrt(sum_squares);
  // torch.nn.utils.clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6) when below 1.
  if (max_grad_norm > 0.0) {
    const double coef = max_grad_norm / (result.grad_norm + 1e-6);
    if (coef < 1.0) result.clip_scale = static_cast<float>(coef);
  }

  kernels::AdamWParams p;
  p.lr = static_cast<float>(lr);
  p.beta1 = static_cast<float>(opt.beta1);
  p.beta2 = static_cast<float>(opt.beta2);
  p.eps = static_cast<float>(opt.eps);
  p.step = step;
  p.grad_scale = result.clip_scale;
  bool gather = false;
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    float* m = unit.exp_avg.as<float>();
    float* v = unit.exp_avg_sq.as<float>();
    // The flat range this rank updates: its shard, or the whole Unit.
    const size_t lo = unit.optimizer_sharded ? std::min(unit.shard.begin, unit.numel()) : 0;
    const size_t hi =
        unit.optimizer_sharded ? std::min(unit.shard.end, unit.numel()) : unit.numel();
    gather = gather || unit.optimizer_sharded;
    for (const TensorSpec& t : unit.layout.tensors()) {
      const size_t begin = std::max(lo, t.offset), end = std::min(hi, t.offset + t.numel);
      if (begin >= end) continue;
      p.weight_decay = t.weight_decay ? static_cast<float>(opt.weight_decay) : 0.0f;
      const size_t k = unit.optimizer_index(begin);
      ops.AdamW(unit.params.as<float>() + begin, unit.grads.as<float>() + begin, m + k, v + k,
                end - begin, p);
    }
  }
  if (distributed && gather) {
    SPW_RETURN_IF_ERROR(ops.Synchronize());
    for (int u = 0; u < model.num_units(); ++u) {
      UnitState& unit = model.unit(u);
      if (!unit.optimizer_sharded) continue;
      float* params = unit.params.as<float>();
      SPW_RETURN_IF_ERROR(
          comm.AllGather(params + unit.shard.begin, params, unit.shard.shard_numel));
    }
  }
  return result;
}

}  // namespace spillway
