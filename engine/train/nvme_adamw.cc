#include "engine/train/nvme_adamw.h"

#include <algorithm>
#include <cstring>

#include "core/status.h"
#include "kernels/cpu/cpu_adam.h"

namespace spillway {

absl::Status NvmeAdamWUnit(NvmeOptimizerState& state, int u, UnitState& unit,
                           const OptimizerConfig& opt, kernels::AdamWParams p) {
  const size_t lo = unit.update_begin(), hi = unit.update_end();
  // Array element j holds flat element origin + j (optimizer_index's inverse).
  const size_t origin = unit.optimizer_sharded() ? unit.shard.begin : 0;
  float* grads = unit.offload_grads.as<float>();
  return state.StreamUnit(u, [&](size_t first, float* master, float* m, float* v, size_t count) {
    const size_t flat = origin + first;
    ForEachTensorPart(unit, std::max(lo, flat), std::min(hi, flat + count),
                      [&](const TensorSpec& t, size_t begin, size_t end) {
                        p.weight_decay = t.weight_decay ? static_cast<float>(opt.weight_decay) : 0;
                        const size_t k = begin - flat;
                        kernels::cpu::CpuAdamW(master + k, grads + first + k, m + k, v + k, nullptr,
                                               end - begin, p);
                      });
    std::memcpy(grads + first, master, count * sizeof(float));
    return absl::OkStatus();
  });
}

absl::Status WriteNvmeMaster(Model& model, kernels::Ops& ops, NvmeOptimizerState& state) {
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    const size_t lo = unit.update_begin(), hi = unit.update_end();
    float* staging = unit.offload_grads.as<float>();
    std::memset(staging, 0, unit.offload_grads.bytes());
    if (lo < hi) {
      ops.CopyToHost(staging + unit.optimizer_index(lo),
                     unit.params.as<float>() + unit.param_index(lo), (hi - lo) * sizeof(float));
      SPW_RETURN_IF_ERROR(ops.Synchronize());
    }
    SPW_RETURN_IF_ERROR(state.WriteArray(u, NvmeOptimizerState::kMaster, staging));
  }
  return absl::OkStatus();
}

}  // namespace spillway
