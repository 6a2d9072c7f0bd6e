#include "engine/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace spillway {
namespace {

// WarmupLR's factor g in [0, 1] at 1-based step s.
double WarmupGamma(const SchedulerConfig& sched, int64_t s) {
  const int64_t w = sched.warmup_num_steps;
  if (s > w) return 1.0;
  if (sched.warmup_log) {
    if (w < 2) return 1.0;  // rejected by ParseConfig; log(1) would divide by zero
    return std::log(static_cast<double>(s)) / std::log(static_cast<double>(w));
  }
  return static_cast<double>(s - 1) / static_cast<double>(w);
}

// WarmupCosineLR's factor on opt.lr at 1-based step s.
double CosineFactor(const SchedulerConfig& sched, int64_t s) {
  const int64_t w = sched.warmup_num_steps;
  const int64_t t = sched.total_num_steps;
  if (s <= w) {
    const double ramp = static_cast<double>(s - 1) / static_cast<double>(w);
    return sched.warmup_min_ratio + (1.0 - sched.warmup_min_ratio) * ramp;
  }
  if (s >= t) return sched.cos_min_ratio;
  const double progress = static_cast<double>(s - w) / static_cast<double>(t - w);
  const double cosine = (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
  return std::max(0.0, sched.cos_min_ratio + (1.0 - sched.cos_min_ratio) * cosine);
}

}  // namespace

double LearningRate(const OptimizerConfig& opt, const SchedulerConfig& sched, int64_t step) {
  const int64_t s = std::max<int64_t>(step, 1);
  switch (sched.type) {
    case SchedulerConfig::Type::kConstant:
      return opt.lr;
    case SchedulerConfig::Type::kWarmupLR:
      return sched.warmup_min_lr +
             (sched.warmup_max_lr - sched.warmup_min_lr) * WarmupGamma(sched, s);
    case SchedulerConfig::Type::kWarmupCosineLR:
      return opt.lr * CosineFactor(sched, s);
  }
  return opt.lr;
}

}  // namespace spillway
