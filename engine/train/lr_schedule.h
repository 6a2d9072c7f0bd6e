// The learning rate at each optimizer step, from the "optimizer" and "scheduler" config
// sections (DeepSpeed's WarmupLR and WarmupCosineLR; docs/config.md has the formulas).
#pragma once

#include <cstdint>

#include "engine/config/config.h"

namespace spillway {

// The learning rate for optimizer step `step` (1-based: the first update is step 1), so that
// step s here is DeepSpeed's last_batch_iteration s - 1. Steps < 1 are treated as step 1.
//   Constant:       opt.lr.
//   WarmupLR:       warmup_min_lr + (warmup_max_lr - warmup_min_lr) * g, where g is
//                   (s - 1) / warmup_num_steps ("linear") or log(s) / log(warmup_num_steps)
//                   ("log") while s <= warmup_num_steps, and 1 after. opt.lr is not used.
//   WarmupCosineLR: opt.lr * f, where f rises linearly from warmup_min_ratio
//                   (f = warmup_min_ratio + (1 - warmup_min_ratio) * (s - 1) / warmup_num_steps
//                   while s <= warmup_num_steps), then follows
//                   f = cos_min_ratio + (1 - cos_min_ratio) * (1 + cos(pi * (s - W) / (T - W))) / 2
//                   down to cos_min_ratio at s = T = total_num_steps, and stays there.
double LearningRate(const OptimizerConfig& opt, const SchedulerConfig& sched, int64_t step);

}  // namespace spillway
