#include "engine/train/loss_scaler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace spillway {

LossScaler::LossScaler(const PrecisionConfig& config) {
  enabled_ = config.mode == PrecisionConfig::Mode::kFp16;
  if (!enabled_) return;
  dynamic_ = config.loss_scale == 0.0;
  scale_ = dynamic_ ? std::ldexp(1.0, config.initial_scale_power) : config.loss_scale;
  min_scale_ = config.min_loss_scale;
  window_ = config.loss_scale_window;
  hysteresis_ = config.hysteresis;
  hysteresis_left_ = hysteresis_;
}

absl::Status LossScaler::Update(bool overflow) {
  if (!dynamic_) return absl::OkStatus();
  if (!overflow) {
    if (++clean_steps_ % window_ == 0) {
      scale_ *= 2.0;
      hysteresis_left_ = hysteresis_;
    }
    return absl::OkStatus();
  }
  clean_steps_ = 0;
  if (hysteresis_left_ > 1) {
    --hysteresis_left_;
    return absl::OkStatus();
  }
  if (scale_ <= min_scale_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "fp16: the gradients overflow even at the smallest loss scale (fp16.min_loss_scale = "
        "%g); lower fp16.min_loss_scale or train with bf16",
        min_scale_));
  }
  scale_ = std::max(scale_ / 2.0, min_scale_);
  return absl::OkStatus();
}

nlohmann::json LossScaler::ToJson() const {
  return {{"scale", scale_}, {"hysteresis_left", hysteresis_left_}, {"clean_steps", clean_steps_}};
}

void LossScaler::FromJson(const nlohmann::json& state) {
  if (!enabled_ || !state.is_object()) return;
  scale_ = state.value("scale", scale_);
  hysteresis_left_ = state.value("hysteresis_left", hysteresis_left_);
  clean_steps_ = state.value("clean_steps", clean_steps_);
}

}  // namespace spillway
