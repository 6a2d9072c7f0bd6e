// AdamW over optimizer state on the NVMe tier (offload_optimizer.device = "nvme"), one Unit at
// a time, bitwise equal to the CPU-tier and in-backend AdamW (the same CpuAdamW kernel on the
// same elements).
//
// NvmeAdamWUnit: Unit u's gradient shard must be in unit.offload_grads; its master, m and v
// stream from `state` in tiles (the read of tile i+1 and the write of tile i-1 in flight while
// AdamW runs on tile i) and the updated parameters replace the gradient copy in
// unit.offload_grads, for the caller to copy to the backend.
// WriteNvmeMaster: the master arrays take the backend's parameters (initialisation, a loaded
// checkpoint), staged through offload_grads.
#pragma once

#include "absl/status/status.h"
#include "engine/config/config.h"
#include "engine/model/model.h"
#include "kernels/ops.h"
#include "offload/nvme_optimizer_state.h"

namespace spillway {

absl::Status NvmeAdamWUnit(NvmeOptimizerState& state, int u, UnitState& unit,
                           const OptimizerConfig& opt, kernels::AdamWParams p);

absl::Status WriteNvmeMaster(Model& model, kernels::Ops& ops, NvmeOptimizerState& state);

}  // namespace spillway
