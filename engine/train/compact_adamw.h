// Compact optimizer state in CPU memory (optimizer.params.state_dtype / master_dtype with
// offload_optimizer.device = "cpu"): per Unit, Adam m and v as bf16 or block-wise 8-bit, or
// bf16 master parameters with a bf16 Kahan compensation term, updated by the kernels of
// kernels/cpu/compact_adam.h (docs/optimizer_state.md). Bytes per parameter of state: fp32 12,
// bf16 m/v 8, 8-bit m/v about 6, bf16 master 12 (4 of them the compensation).
//
// The 8-bit blocks start at each tensor part (so that weight decay can differ between tensors).
// Checkpoints hold the moments decoded to fp32 (bf16 and 8-bit codes encode back exactly) and
// the parameters; the Kahan compensation is not saved, so a bf16-master run resumes with it at
// zero (a difference below one bf16 ulp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "engine/train/external_optimizer_state.h"
#include "offload/buffer.h"

namespace spillway {

class CompactAdamW : public ExternalOptimizerState {
 public:
  static bool Wanted(const Config& config) { return config.optimizer.compact(); }
  // Buffers for `model`'s Units in `tier` (the offload tier).
  static absl::StatusOr<std::unique_ptr<CompactAdamW>> Create(const Config& config, Model& model,
                                                              Tier tier);

  absl::Status StepUnit(int u, UnitState& unit, const OptimizerConfig& opt,
                        kernels::AdamWParams p) override;
  absl::Status WriteMaster(int u, const float* src) override;
  absl::Status ReadMoment(int u, Moment moment, float* dst) override;
  absl::Status WriteMoment(int u, Moment moment, const float* src) override;
  std::string Describe() const override;

  size_t bytes() const;

 private:
  // A tensor's part of the Unit's update range: array indexes [begin, end), and (8-bit) the
  // index of its first scale.
  struct Part {
    size_t begin, end, first_block;
    bool decay;
  };
  struct UnitArrays {
    size_t numel = 0;
    std::vector<Part> parts;
    Buffer master;            // fp32, or bf16 with master_dtype bf16
    Buffer comp;              // bf16 Kahan compensation (bf16 master only)
    Buffer m, v;              // fp32, bf16 or 8-bit codes
    Buffer m_scale, v_scale;  // 8-bit: one fp32 scale per block of each part
  };

  explicit CompactAdamW(OptimizerConfig::StateDtype dtype, bool bf16_master, Tier tier)
      : dtype_(dtype), bf16_master_(bf16_master), tier_(tier) {}

  OptimizerConfig::StateDtype dtype_;
  bool bf16_master_;
  Tier tier_;
  std::vector<UnitArrays> units_;
};

}  // namespace spillway
