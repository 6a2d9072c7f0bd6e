// The optimizer state on the NVMe tier (offload_optimizer.device = "nvme"): fp32 master
// parameters and Adam m and v in this rank's NvmeOptimizerState file, stepped one Unit at a time
// with the tiles streamed through the CPU AdamW (the read of tile i+1 and the write of tile i-1
// in flight while tile i computes), bitwise equal to the CPU-tier and in-backend AdamW (the
// same CpuAdamW kernel on the same elements).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "engine/train/external_optimizer_state.h"
#include "offload/nvme_optimizer_state.h"

namespace spillway {

class NvmeAdamW : public ExternalOptimizerState {
 public:
  // One file under config.zero.nvme_path for `model`'s Units on rank `rank`; errors name
  // zero_optimization.offload_optimizer.nvme_path.
  static absl::StatusOr<std::unique_ptr<NvmeAdamW>> Create(const Config& config, Model& model,
                                                           int rank);

  absl::Status StepUnit(int u, UnitState& unit, const OptimizerConfig& opt,
                        kernels::AdamWParams p) override;
  absl::Status WriteMaster(int u, const float* src) override;
  absl::Status ReadMaster(int u, float* dst) override;
  NvmeShardReader::Location MasterLocation(int u) const override;
  absl::Status ReadMoment(int u, Moment moment, float* dst) override;
  absl::Status WriteMoment(int u, Moment moment, const float* src) override;
  std::string Describe() const override;
  std::string TakeTimeReport() override;

  NvmeOptimizerState& state() { return *state_; }

 private:
  NvmeAdamW(std::unique_ptr<NvmeOptimizerState> state, int buffer_count)
      : state_(std::move(state)), buffer_count_(buffer_count) {}
  static NvmeOptimizerState::Array ArrayOf(Moment moment) {
    return moment == kExpAvg ? NvmeOptimizerState::kExpAvg : NvmeOptimizerState::kExpAvgSq;
  }

  std::unique_ptr<NvmeOptimizerState> state_;
  int buffer_count_;
};

}  // namespace spillway
