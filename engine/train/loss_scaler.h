// LossScaler: fp16's loss scale. The loss (so every gradient) is multiplied by scale() before
// the backward, and the optimizer divides it out again; a step whose gradients are not finite
// (an fp16 overflow) is skipped and reported to Update().
//
// Dynamic scaling (fp16.loss_scale = 0), DeepSpeed's rule with its keys:
//  - start at 2^initial_scale_power;
//  - an overflow lowers the scale by half (not below min_loss_scale) once `hysteresis`
//    overflows have been seen since the last raise (earlier ones only use up the allowance);
//  - loss_scale_window steps in a row without an overflow double the scale and restore the
//    hysteresis allowance.
// A static scale (fp16.loss_scale > 0) never changes; overflowing steps are still skipped.
// Not fp16: scale 1, never skips.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/config/config.h"
#include "nlohmann/json.hpp"

namespace spillway {

class LossScaler {
 public:
  explicit LossScaler(const PrecisionConfig& config);

  bool enabled() const { return enabled_; }  // fp16: steps with overflows are skipped
  double scale() const { return scale_; }

  // After each step: `overflow` when its gradients were not finite (the step was skipped).
  // FailedPrecondition, naming fp16.min_loss_scale, when a dynamic scale overflows while
  // already at its minimum: training cannot go on in fp16.
  absl::Status Update(bool overflow);

  // The dynamic state, for checkpoints (resuming continues the same schedule).
  nlohmann::json ToJson() const;
  void FromJson(const nlohmann::json& state);

 private:
  bool enabled_ = false;
  bool dynamic_ = false;
  double scale_ = 1.0;
  double min_scale_ = 1.0;
  int64_t window_ = 1;
  int64_t hysteresis_ = 1;
  int64_t hysteresis_left_ = 1;
  int64_t clean_steps_ = 0;  // steps since the last overflow or raise
};

}  // namespace spillway
