// Optimizer state that the offloaded AdamW keeps outside the UnitStates' Buffers: on NVMe
// (engine/train/nvme_adamw.h) or in a compact format in CPU memory (compact_adamw.h). The
// UnitStates then hold only the gradient copy (offload_grads), which also carries the updated
// parameters back to the backend. Arrays are laid out as offload_grads (optimizer_index).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "engine/config/config.h"
#include "kernels/ops.h"
#include "offload/nvme_shard_reader.h"
#include "partitioner/unit_state.h"

namespace spillway {

// The I/O engine options the config gives the NVMe tier (nvme_path and the aio section).
inline IoOptions NvmeIoOptions(const Config& config) {
  IoOptions io;
  io.nvme_path = config.zero.nvme_path;
  io.block_size = static_cast<size_t>(config.aio.block_size);
  io.queue_depth = static_cast<int>(config.aio.queue_depth);
  io.force_fallback = config.aio.force_pread;
  return io;
}

class ExternalOptimizerState {
 public:
  enum Moment { kExpAvg, kExpAvgSq };

  virtual ~ExternalOptimizerState() = default;

  // AdamW on Unit u's part (UnitState::update_begin/end): its gradient is in
  // unit.offload_grads, which then holds the updated parameters.
  virtual absl::Status StepUnit(int u, UnitState& unit, const OptimizerConfig& opt,
                                kernels::AdamWParams p) = 0;
  // The master parameters of Unit u take `src` (UnitState::optimizer_numel floats), and back
  // (decoded to fp32).
  virtual absl::Status WriteMaster(int u, const float* src) = 0;
  virtual absl::Status ReadMaster(int u, float* dst) = 0;
  // Where Unit u's fp32 master lies, on NVMe or in host memory, once StepUnit or WriteMaster
  // for it has returned (offload_param "nvme" reads the parameters there); neither file nor
  // memory where it cannot be read as it is (a bf16 master).
  virtual NvmeShardReader::Location MasterLocation(int u) const { return {}; }
  // A moment of Unit u as fp32 (decoded), and back: for checkpoints.
  virtual absl::Status ReadMoment(int u, Moment moment, float* dst) = 0;
  virtual absl::Status WriteMoment(int u, Moment moment, const float* src) = 0;
  // One line for the start-up report: where the state lives and its bytes.
  virtual std::string Describe() const = 0;
  // Where the optimizer steps' time went since the last call (empty: nothing to say).
  virtual std::string TakeTimeReport() { return ""; }
};

}  // namespace spillway
