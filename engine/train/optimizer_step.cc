#include "engine/train/optimizer_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/model/device_scalars.h"
#include "engine/train/offload_optimizer.h"
#include "kernels/cpu/cpu_adam.h"

namespace spillway {
namespace {

// The sum over ranks of each rank's `local` value, added in rank order in double precision
// (the same on every rank). Doubles travel as pairs of floats' bit patterns.
absl::StatusOr<double> SumOverRanks(Communicator& control, double local) {
  if (control.world_size() == 1) return local;
  static_assert(sizeof(double) == 2 * sizeof(float));
  float mine[2];
  std::memcpy(mine, &local, sizeof(double));
  std::vector<float> all(2 * control.world_size());
  SPW_RETURN_IF_ERROR(control.AllGather(mine, all.data(), 2));
  double sum = 0.0;
  for (int r = 0; r < control.world_size(); ++r) {
    double x;
    std::memcpy(&x, all.data() + 2 * r, sizeof(double));
    sum += x;
  }
  return sum;
}

std::vector<int> AllUnits(const Model& model) {
  std::vector<int> units(model.num_units());
  for (int u = 0; u < model.num_units(); ++u) units[u] = u;
  return units;
}

// Stages 1-2 on several ranks: every rank updated its shard of `units`; all-gather them whole.
absl::Status GatherUpdatedParams(Model& model, Communicator& data, std::span<const int> units) {
  if (data.world_size() == 1) return absl::OkStatus();
  for (int u : units) {
    UnitState& unit = model.unit(u);
    if (!unit.optimizer_sharded() || unit.params_sharded()) continue;
    float* params = unit.params.as<float>();
    SPW_RETURN_IF_ERROR(data.AllGather(params + unit.shard.begin, params, unit.shard.shard_numel));
  }
  return absl::OkStatus();
}

// The Units' weight copies stop being current (UnitState::weight_copy_current): their
// parameters are about to change, or were set from outside.
void ForgetWeightCopies(Model& model, std::span<const int> units) {
  for (int u : units) model.unit(u).weight_copy_current = false;
}

// AdamW in the backend over the Units' own state (issued, not waited for): one AdamWParts call
// per Unit over its tensors' parts in [update_begin, update_end). With store_weight_copies, a
// Unit updated whole also gets its matmuls' bf16 copy written, which is then current.
void BackendAdamW(Model& model, kernels::Ops& ops, const OptimizerConfig& opt,
                  kernels::AdamWParams p, std::span<const int> units, bool store_weight_copies) {
  std::vector<size_t> ranges;
  std::vector<float> decays;
  for (int u : units) {
    UnitState& unit = model.unit(u);
    const size_t lo = unit.update_begin(), hi = unit.update_end();
    if (lo >= hi) continue;
    ranges.clear();
    decays.clear();
    ForEachTensorPart(unit, lo, hi, [&](const TensorSpec& t, size_t begin, size_t end) {
      ranges.push_back(begin - lo);
      ranges.push_back(end - lo);
      decays.push_back(t.weight_decay ? static_cast<float>(opt.weight_decay) : 0.0f);
    });
    const size_t k = unit.optimizer_index(lo);
    const bool whole = lo == 0 && hi == unit.numel();
    uint16_t* copy = store_weight_copies && whole ? unit.weight_copy : nullptr;
    ops.AdamWParts(unit.params.as<float>() + unit.param_index(lo), copy,
                   unit.grads.as<float>() + unit.grad_index(lo), unit.exp_avg.as<float>() + k,
                   unit.exp_avg_sq.as<float>() + k, ranges.data(), decays.data(), decays.size(), p);
    unit.weight_copy_current = copy != nullptr;
  }
}

// AdamW on the CPU over the offloaded state: the gradients this rank updates come down to
// the offload tier, the CPU kernel (bitwise equal to the backend's AdamW) updates the master
// parameters and moments there, and the updated parameters go back up.
absl::Status OffloadedAdamW(Model& model, kernels::Ops& ops, const OptimizerConfig& opt,
                            kernels::AdamWParams p, std::span<const int> units,
                            ExternalOptimizerState* external) {
  for (int u : units) {
    UnitState& unit = model.unit(u);
    const size_t lo = unit.update_begin(), hi = unit.update_end();
    if (lo >= hi || unit.params_offloaded) continue;  // offloaded: the gradients are there
    ops.CopyToHost(unit.offload_grads.as<float>() + unit.optimizer_index(lo),
                   unit.grads.as<float>() + unit.grad_index(lo), (hi - lo) * sizeof(float));
  }
  SPW_RETURN_IF_ERROR(ops.Synchronize());
  for (int u : units) {
    UnitState& unit = model.unit(u);
    const size_t lo = unit.update_begin(), hi = unit.update_end();
    if (lo >= hi) continue;
    if (external != nullptr) {
      SPW_RETURN_IF_ERROR(external->StepUnit(u, unit, opt, p));
      if (unit.params_in_master) continue;  // the master on NVMe is the parameters
      ops.CopyToBackend(unit.params.as<float>() + unit.param_index(lo),
                        unit.offload_grads_data() + unit.optimizer_index(lo),
                        (hi - lo) * sizeof(float));
      continue;
    }
    StepOffloadedShard(unit, opt, p);
    if (unit.params_offloaded) continue;  // the master is the parameters
    ops.CopyToBackend(unit.params.as<float>() + unit.param_index(lo),
                      unit.offload_master.as<float>() + unit.optimizer_index(lo),
                      (hi - lo) * sizeof(float));
  }
  return absl::OkStatus();
}

// The external master arrays take the backend's parameters, staged through the gradient copy
// (where parameters on NVMe already wait: UnitState::incoming_params).
absl::Status WriteExternalMaster(Model& model, kernels::Ops& ops,
                                 ExternalOptimizerState& external) {
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    if (!unit.optimizer_offloaded()) continue;  // in the backend (offload_optimizer.ratio)
    const size_t lo = unit.update_begin(), hi = unit.update_end();
    float* staging = unit.offload_grads_data();
    if (unit.params_in_master) {  // zero what lies outside [lo, hi): padding
      const size_t first = lo < hi ? unit.optimizer_index(lo) : 0;
      const size_t last = lo < hi ? unit.optimizer_index(hi) : 0;
      std::memset(staging, 0, first * sizeof(float));
      std::memset(staging + last, 0, (unit.optimizer_numel() - last) * sizeof(float));
      SPW_RETURN_IF_ERROR(external.WriteMaster(u, staging));
      continue;
    }
    std::memset(staging, 0, unit.optimizer_numel() * sizeof(float));
    if (lo < hi) {
      ops.CopyToHost(staging + unit.optimizer_index(lo),
                     unit.params.as<float>() + unit.param_index(lo), (hi - lo) * sizeof(float));
      SPW_RETURN_IF_ERROR(ops.Synchronize());
    }
    SPW_RETURN_IF_ERROR(external.WriteMaster(u, staging));
  }
  return absl::OkStatus();
}

// AdamW over `units` and the stage 1-2 all-gather (AdamWStep); store_weight_copies as
// BackendAdamW's, for callers after which nothing else writes the parameters before a forward.
absl::Status AdamWAndGather(Model& model, kernels::Ops& ops, Communicator& data,
                            const OptimizerConfig& opt, double lr, float grad_scale, int64_t step,
                            std::span<const int> units, ExternalOptimizerState* external,
                            bool store_weight_copies) {
  ForgetWeightCopies(model, units);
  kernels::AdamWParams p = AdamWParamsFor(opt, lr, step);
  p.grad_scale = grad_scale;
  if (model.unit(units.front()).optimizer_offloaded()) {
    SPW_RETURN_IF_ERROR(OffloadedAdamW(model, ops, opt, p, units, external));
  } else {
    BackendAdamW(model, ops, opt, p, units, store_weight_copies);
  }
  return GatherUpdatedParams(model, data, units);
}

}  // namespace

kernels::AdamWParams AdamWParamsFor(const OptimizerConfig& opt, double lr, int64_t step) {
  kernels::AdamWParams p;
  p.lr = static_cast<float>(lr);
  p.beta1 = static_cast<float>(opt.beta1);
  p.beta2 = static_cast<float>(opt.beta2);
  p.eps = static_cast<float>(opt.eps);
  p.step = step;
  return p;
}

void StepOffloadedShard(UnitState& unit, const OptimizerConfig& opt, kernels::AdamWParams p) {
  ForEachTensorPart(unit, unit.update_begin(), unit.update_end(),
                    [&](const TensorSpec& t, size_t begin, size_t end) {
                      p.weight_decay = t.weight_decay ? static_cast<float>(opt.weight_decay) : 0.0f;
                      const size_t k = unit.optimizer_index(begin);
                      kernels::cpu::CpuAdamW(
                          unit.offload_master_data() + k, unit.offload_grads_data() + k,
                          unit.exp_avg.as<float>() + k, unit.exp_avg_sq.as<float>() + k, nullptr,
                          end - begin, p);
                    });
}

absl::Status FlushOffloadedStep(Model& model, kernels::Ops& ops, Communicator& data,
                                OffloadedOptimizer* offload) {
  if (offload == nullptr) return absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(const bool uploaded, offload->Flush());
  if (!uploaded) return absl::OkStatus();
  return GatherUpdatedParams(model, data, AllUnits(model));
}

absl::Status CopyParamsToOffloadMaster(Model& model, kernels::Ops& ops,
                                       ExternalOptimizerState* external) {
  ForgetWeightCopies(model, AllUnits(model));
  if (external != nullptr) return WriteExternalMaster(model, ops, *external);
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    const size_t lo = unit.update_begin(), hi = unit.update_end();
    if (!unit.optimizer_offloaded() || unit.params_offloaded || lo >= hi) continue;
    ops.CopyToHost(unit.offload_master.as<float>() + unit.optimizer_index(lo),
                   unit.params.as<float>() + unit.param_index(lo), (hi - lo) * sizeof(float));
  }
  return ops.Synchronize();
}

void AddGradSumSquares(Model& model, kernels::Ops& ops, double* sum_squares,
                       std::span<const int> units) {
  const std::vector<int> all = units.empty() ? AllUnits(model) : std::vector<int>();
  if (units.empty()) units = all;
  // Each tensor part summed on its own (as the offloaded Units' parts), all in one call up to
  // the next offloaded Unit, whose sums are added in their place.
  std::vector<std::span<const float>> parts;
  const auto flush = [&] {
    ops.AddSumSquaresParts(sum_squares, parts);
    parts.clear();
  };
  for (int u : units) {
    UnitState& unit = model.unit(u);
    if (unit.params_offloaded) {  // the backend took the sums before the shard went down
      flush();
      const std::span<const double> sums = model.residency()->grad_sum_squares(u);
      ops.AddInOrder(sum_squares, sums.data(), sums.size());
      continue;
    }
    // Whole gradients are the same on every rank; shards are added up over ranks later.
    const size_t lo = unit.grads_sharded() ? unit.update_begin() : 0;
    const size_t hi = unit.grads_sharded() ? unit.update_end() : unit.numel();
    const float* grads = unit.grads.as<float>();
    ForEachTensorPart(unit, lo, hi, [&](const TensorSpec& t, size_t begin, size_t end) {
      parts.emplace_back(grads + unit.grad_index(begin), end - begin);
    });
  }
  flush();
}

absl::StatusOr<double> GradSumSquares(Model& model, kernels::Ops& ops, std::span<const int> units) {
  SPW_ASSIGN_OR_RETURN(DeviceScalars scalars,
                       DeviceScalars::Create(ops, 1, "the gradients' sum of squares"));
  scalars.Zero(ops);
  AddGradSumSquares(model, ops, scalars.at(0), units);
  double sum_squares = 0.0;
  SPW_RETURN_IF_ERROR(scalars.Read(ops, {&sum_squares, 1}));
  return sum_squares;
}

absl::StatusOr<OptimizerStepResult> OptimizerStep(Model& model, kernels::Ops& ops,
                                                  Communicator& data, Communicator& control,
                                                  const OptimizerConfig& opt, double lr,
                                                  double max_grad_norm, int64_t step,
                                                  ExternalOptimizerState* external,
                                                  OffloadedOptimizer* offload) {
  SPW_ASSIGN_OR_RETURN(const double sum_squares, GradSumSquares(model, ops, {}));
  return ApplyOptimizerStep(model, ops, data, control, opt, lr, max_grad_norm, step, sum_squares,
                            GradScaling{}, external, offload);
}

absl::StatusOr<OptimizerStepResult> ApplyOptimizerStep(
    Model& model, kernels::Ops& ops, Communicator& data, Communicator& control,
    const OptimizerConfig& opt, double lr, double max_grad_norm, int64_t step,
    double local_sum_squares, const GradScaling& scaling, ExternalOptimizerState* external,
    OffloadedOptimizer* offload) {
  ForgetWeightCopies(model, AllUnits(model));
  OptimizerStepResult result;
  double sum_squares = local_sum_squares;
  if (model.unit(0).grads_sharded()) {
    SPW_ASSIGN_OR_RETURN(sum_squares, SumOverRanks(control, sum_squares));
  }
  result.grad_norm = std::sqrt(sum_squares) / scaling.loss_scale;
  if (scaling.skip_non_finite && !std::isfinite(result.grad_norm)) {
    result.skipped = true;
    if (offload != nullptr) SPW_RETURN_IF_ERROR(offload->FinishStep(0.0f, /*skipped=*/true));
    return result;
  }
  result.clip_scale = ClipScale(result.grad_norm, max_grad_norm);
  // Unscaling folds into the factor AdamW applies (exactly clip_scale when loss_scale is 1).
  const float grad_scale = scaling.loss_scale == 1.0
                               ? result.clip_scale
                               : static_cast<float>(result.clip_scale / scaling.loss_scale);
  if (offload != nullptr) {
    // offload_optimizer.ratio: the Units that keep their optimizer in the backend step there
    // first (issued on the backend), the others on the CPU.
    std::vector<int> in_backend;
    for (int u = 0; u < model.num_units(); ++u) {
      if (!model.unit(u).optimizer_offloaded()) in_backend.push_back(u);
    }
    kernels::AdamWParams p = AdamWParamsFor(opt, lr, step);
    p.grad_scale = grad_scale;
    BackendAdamW(model, ops, opt, p, in_backend, /*store_weight_copies=*/true);
    SPW_RETURN_IF_ERROR(offload->FinishStep(grad_scale));
    SPW_RETURN_IF_ERROR(GatherUpdatedParams(model, data, AllUnits(model)));
    return result;
  }
  SPW_RETURN_IF_ERROR(AdamWAndGather(model, ops, data, opt, lr, grad_scale, step, AllUnits(model),
                                     external, /*store_weight_copies=*/true));
  return result;
}

float ClipScale(double grad_norm, double max_grad_norm) {
  // torch.nn.utils.clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6) when below 1.
  if (max_grad_norm > 0.0) {
    const double coef = max_grad_norm / (grad_norm + 1e-6);
    if (coef < 1.0) return static_cast<float>(coef);
  }
  return 1.0f;
}

absl::Status AdamWStep(Model& model, kernels::Ops& ops, Communicator& data,
                       const OptimizerConfig& opt, double lr, float grad_scale, int64_t step,
                       std::span<const int> units, ExternalOptimizerState* external) {
  return AdamWAndGather(model, ops, data, opt, lr, grad_scale, step, units, external,
                        /*store_weight_copies=*/false);
}

}  // namespace spillway
