// LearningRate against hand-computed values (1-based steps; docs/config.md has the formulas).
#include "engine/train/lr_schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace spillway {
namespace {

constexpr double kTol = 1e-12;

TEST(LrScheduleTest, ConstantIsOptimizerLr) {
  OptimizerConfig opt;
  opt.lr = 6e-4;
  SchedulerConfig sched;  // kConstant
  EXPECT_DOUBLE_EQ(LearningRate(opt, sched, 1), 6e-4);
  EXPECT_DOUBLE_EQ(LearningRate(opt, sched, 12345), 6e-4);
}

TEST(LrScheduleTest, WarmupLRLinear) {
  OptimizerConfig opt;  // lr unused by WarmupLR
  SchedulerConfig s;
  s.type = SchedulerConfig::Type::kWarmupLR;
  s.warmup_min_lr = 0.002;
  s.warmup_max_lr = 0.01;
  s.warmup_num_steps = 10;
  s.warmup_log = false;
  // lr = min + (max - min) * (step - 1) / 10 while step <= 10.
  EXPECT_NEAR(LearningRate(opt, s, 1), 0.002, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 6), 0.006, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 10), 0.0092, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 11), 0.01, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 1000), 0.01, kTol);
}

TEST(LrScheduleTest, WarmupLRLinearWithoutWarmup) {
  OptimizerConfig opt;
  SchedulerConfig s;
  s.type = SchedulerConfig::Type::kWarmupLR;
  s.warmup_min_lr = 0.0;
  s.warmup_max_lr = 0.01;
  s.warmup_num_steps = 0;
  EXPECT_NEAR(LearningRate(opt, s, 1), 0.01, kTol);
}

TEST(LrScheduleTest, WarmupLRLog) {
  OptimizerConfig opt;
  SchedulerConfig s;
  s.type = SchedulerConfig::Type::kWarmupLR;
  s.warmup_min_lr = 0.0;
  s.warmup_max_lr = 0.01;
  s.warmup_num_steps = 100;
  s.warmup_log = true;
  // lr = 0.01 * ln(step) / ln(100) while step <= 100.
  EXPECT_NEAR(LearningRate(opt, s, 1), 0.0, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 10), 0.005, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 50), 0.01 * 0.84948500216800, 1e-12);
  EXPECT_NEAR(LearningRate(opt, s, 100), 0.01, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 101), 0.01, kTol);
  s.warmup_min_lr = 0.001;  // 0.001 + 0.009 * 0.5
  EXPECT_NEAR(LearningRate(opt, s, 10), 0.0055, kTol);
}

SchedulerConfig Cosine() {
  SchedulerConfig s;
  s.type = SchedulerConfig::Type::kWarmupCosineLR;
  s.warmup_num_steps = 100;
  s.total_num_steps = 1100;
  s.warmup_min_ratio = 0.1;
  s.cos_min_ratio = 0.05;
  return s;
}

TEST(LrScheduleTest, WarmupCosineLR) {
  OptimizerConfig opt;
  opt.lr = 1e-3;
  const SchedulerConfig s = Cosine();
  // Warmup: factor = 0.1 + 0.9 * (step - 1) / 100.
  EXPECT_NEAR(LearningRate(opt, s, 1), 1e-3 * 0.1, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 51), 1e-3 * 0.55, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 100), 1e-3 * 0.991, kTol);
  // Cosine over steps 100..1100: factor = 0.05 + 0.95 * (1 + cos(pi * (step - 100) / 1000)) / 2.
  EXPECT_NEAR(LearningRate(opt, s, 350), 1e-3 * (0.05 + 0.95 * 0.85355339059327), kTol);
  EXPECT_NEAR(LearningRate(opt, s, 600), 1e-3 * (1 + 0.05) / 2, kTol);  // midpoint
  EXPECT_NEAR(LearningRate(opt, s, 1100), 1e-3 * 0.05, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 1101), 1e-3 * 0.05, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 100000), 1e-3 * 0.05, kTol);
  // Monotone after the warmup.
  for (int64_t step = 101; step < 1100; ++step) {
    EXPECT_LE(LearningRate(opt, s, step + 1), LearningRate(opt, s, step)) << step;
  }
}

TEST(LrScheduleTest, WarmupCosineLRWithoutWarmup) {
  OptimizerConfig opt;
  opt.lr = 2.0;
  SchedulerConfig s = Cosine();
  s.warmup_num_steps = 0;
  s.total_num_steps = 10;
  s.cos_min_ratio = 0.0;
  EXPECT_NEAR(LearningRate(opt, s, 1), 2.0 * (1 + std::cos(M_PI * 0.1)) / 2, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 5), 1.0, kTol);
  EXPECT_NEAR(LearningRate(opt, s, 10), 0.0, kTol);
}

}  // namespace
}  // namespace spillway
