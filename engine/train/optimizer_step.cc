#include "engine/train/optimizer_step.h"

#include <cmath>

namespace spillway {

OptimizerStepResult OptimizerStep(Gpt2& model, kernels::Ops& ops, const OptimizerConfig& opt,
                                  double lr, double max_grad_norm, int64_t step) {
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
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    float* m = unit.exp_avg.as<float>();
    float* v = unit.exp_avg_sq.as<float>();
    for (const TensorSpec& t : unit.layout.tensors()) {
      p.weight_decay = t.weight_decay ? static_cast<float>(opt.weight_decay) : 0.0f;
      ops.AdamW(unit.param(t), unit.grad(t), m + t.offset, v + t.offset, t.numel, p);
    }
  }
  return result;
}

}  // namespace spillway
