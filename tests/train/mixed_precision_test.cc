// bf16 / fp16 mixed precision on the CPU backend (matmul operands rounded to 16 bits, fp32
// master weights): bf16 and fp16 track fp32; fp16's dynamic loss scale backs off on overflows
// injected through a huge initial scale, skips those steps without touching any state, and
// then trains as a run that never overflowed; the scaler's rule step by step; fp16 resume.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/train/loss_scaler.h"
#include "engine/train/trainer.h"
#include "nlohmann/json.hpp"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::MakeTrainer;
using testing_util::SmallConfig;

// SmallConfig with a precision section and a progress line (and metrics record) every step.
std::string WithPrecision(const std::string& config, const std::string& section) {
  return absl::StrReplaceAll(config, {{R"("steps_per_print": 2,)",
                                       absl::StrCat(R"("steps_per_print": 1, )", section, ",")}});
}

std::vector<nlohmann::json> StepRecords(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(std::move(j));
  }
  return out;
}

// Relative difference of two loss curves, at most.
double MaxRelativeGap(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double gap = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    gap = std::max(gap, std::abs(a[i] - b[i]) / std::abs(b[i]));
  }
  return gap;
}

// 16-bit operands change the numbers (so the rounding is really applied) but not the training:
// bf16 (8-bit mantissa) within 3% of fp32 per step, fp16 (11 bits) within 1%.
TEST(MixedPrecisionTest, Bf16AndFp16TrackFp32) {
  auto fp32 = MakeTrainer(SmallConfig(12, FreshDir("mp_fp32")));
  ASSERT_TRUE(fp32->Train().ok());
  auto bf16 = MakeTrainer(
      WithPrecision(SmallConfig(12, FreshDir("mp_bf16")), R"("bf16": {"enabled": true})"));
  ASSERT_TRUE(bf16->Train().ok());
  auto fp16 = MakeTrainer(
      WithPrecision(SmallConfig(12, FreshDir("mp_fp16")), R"("fp16": {"enabled": true})"));
  ASSERT_TRUE(fp16->Train().ok());

  EXPECT_NE(bf16->step_losses(), fp32->step_losses());
  EXPECT_NE(fp16->step_losses(), fp32->step_losses());
  EXPECT_LT(MaxRelativeGap(bf16->step_losses(), fp32->step_losses()), 0.03);
  EXPECT_LT(MaxRelativeGap(fp16->step_losses(), fp32->step_losses()), 0.01);
  EXPECT_LT(fp16->step_losses().back(), 0.9 * fp16->step_losses().front());
  EXPECT_EQ(fp16->skipped_steps(), 0);
  EXPECT_EQ(fp16->loss_scale(), 65536.0);  // 2^16, no overflow, window 1000 not reached
  EXPECT_EQ(bf16->skipped_steps(), 0);
  EXPECT_EQ(bf16->loss_scale(), 1.0);
}

// A scale of 2^40 overflows fp16 in the backward. Hysteresis 2: the first overflow keeps the
// scale, each later one halves it, until the gradients fit; those steps are skipped.
TEST(MixedPrecisionTest, Fp16OverflowBacksOffSkipsAndRecovers) {
  const std::string dir = FreshDir("mp_overflow");
  auto run = MakeTrainer(
      WithPrecision(SmallConfig(40, dir),
                    R"("fp16": {"enabled": true, "initial_scale_power": 40, "hysteresis": 2})"));
  ASSERT_TRUE(run->Train().ok());
  const std::vector<nlohmann::json> records = StepRecords(dir);
  ASSERT_EQ(records.size(), 40u);

  const int64_t skipped = run->skipped_steps();
  ASSERT_GE(skipped, 3);
  ASSERT_LE(skipped, 30);
  double expected_scale = std::ldexp(1.0, 40);
  for (int64_t i = 0; i < 40; ++i) {
    SCOPED_TRACE(::testing::Message() << "step " << i + 1);
    const nlohmann::json& r = records[i];
    const bool skip = i < skipped;  // the overflows come first, then none
    EXPECT_EQ(r["skipped_steps"].get<int64_t>(), skip ? i + 1 : skipped);
    if (skip && i > 0) expected_scale /= 2;  // hysteresis 2: the first overflow is allowed
    EXPECT_EQ(r["loss_scale"].get<double>(), expected_scale);
    // A skipped step's norm is not finite (null in JSON); a taken one's is.
    EXPECT_EQ(r["grad_norm"].is_number(), !skip);
  }
  // After the back-off it trains like a run that started at the final scale without overflows:
  // the same number of optimizer steps from the same initialisation (on other batches: the
  // skipped steps used some) ends at nearly the same loss.
  const double final_scale = run->loss_scale();
  EXPECT_EQ(final_scale, expected_scale);
  auto clean = MakeTrainer(
      WithPrecision(SmallConfig(40 - skipped, FreshDir("mp_overflow_clean")),
                    absl::StrCat(R"("fp16": {"enabled": true, "loss_scale": )", final_scale, "}")));
  ASSERT_TRUE(clean->Train().ok());
  EXPECT_EQ(clean->skipped_steps(), 0);
  absl::StatusOr<double> a = run->Evaluate();
  absl::StatusOr<double> b = clean->Evaluate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(std::abs(*a - *b) / *b, 0.05) << *a << " vs " << *b;
  EXPECT_LT(*a, run->step_losses()[skipped] * 0.95);
}

// Skipped steps change nothing: parameters and AdamW state equal an untrained model's bitwise.
TEST(MixedPrecisionTest, Fp16SkippedStepsLeaveStateUntouched) {
  const std::string fp16 = R"("fp16": {"enabled": true, "initial_scale_power": 60})";
  auto untrained = MakeTrainer(WithPrecision(SmallConfig(3, FreshDir("mp_untrained")), fp16));
  auto skipped = MakeTrainer(WithPrecision(SmallConfig(3, FreshDir("mp_skipped")), fp16));
  ASSERT_TRUE(skipped->Train().ok());
  EXPECT_EQ(skipped->skipped_steps(), 3);
  testing_util::ExpectSameState(untrained->model(), skipped->model());
}

// Resuming an fp16 run mid-back-off continues the scaler and the skipped-step count: bitwise
// equal to the uninterrupted run.
TEST(MixedPrecisionTest, Fp16ResumeIsBitwise) {
  const std::string fp16 = R"("fp16": {"enabled": true, "initial_scale_power": 28})";
  const std::string dir_a = FreshDir("mp_resume_full");
  const std::string dir_b = FreshDir("mp_resume_parts");
  auto full = MakeTrainer(WithPrecision(SmallConfig(12, dir_a), fp16));
  ASSERT_TRUE(full->Train().ok());
  auto first = MakeTrainer(WithPrecision(SmallConfig(4, dir_b), fp16));
  ASSERT_TRUE(first->Train().ok());
  auto second = MakeTrainer(WithPrecision(SmallConfig(12, dir_b), fp16));
  ASSERT_TRUE(second->Resume(dir_b + "/ckpt").ok());
  EXPECT_EQ(second->skipped_steps(), first->skipped_steps());
  EXPECT_EQ(second->loss_scale(), first->loss_scale());
  ASSERT_TRUE(second->Train().ok());
  EXPECT_GT(full->skipped_steps(), 0);
  EXPECT_EQ(second->skipped_steps(), full->skipped_steps());
  EXPECT_EQ(second->loss_scale(), full->loss_scale());
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(full->step_losses()[4 + i], second->step_losses()[i]) << "step " << 5 + i;
  }
  testing_util::ExpectSameState(full->model(), second->model());
}

// The dynamic rule on a scripted overflow sequence (window 3, hysteresis 2).
TEST(LossScalerTest, DynamicRule) {
  PrecisionConfig config;
  config.mode = PrecisionConfig::Mode::kFp16;
  config.initial_scale_power = 4;
  config.loss_scale_window = 3;
  config.hysteresis = 2;
  config.min_loss_scale = 2;
  LossScaler s(config);
  EXPECT_TRUE(s.enabled());
  struct Event {
    bool overflow;
    double scale_after;
  };
  const Event events[] = {
      {false, 16}, {false, 16}, {false, 32},  // 3 clean steps double
      {true, 32},                             // first overflow: hysteresis allowance
      {true, 16},  {true, 8},                 // then each overflow halves
      {false, 8},  {false, 8},  {false, 16},  // window counted from the last overflow
      {true, 16},                             // the raise restored the allowance
      {true, 8},   {true, 4},   {true, 2},    // down to min_loss_scale
  };
  for (const Event& e : events) {
    ASSERT_TRUE(s.Update(e.overflow).ok());
    EXPECT_EQ(s.scale(), e.scale_after);
  }
  // At the minimum, another overflow is an error naming the key.
  absl::Status at_min = s.Update(true);
  EXPECT_EQ(at_min.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(at_min.message().find("fp16.min_loss_scale"), std::string::npos) << at_min;

  // A static scale never moves; bf16 has none.
  config.loss_scale = 128;
  LossScaler fixed(config);
  ASSERT_TRUE(fixed.Update(true).ok());
  ASSERT_TRUE(fixed.Update(false).ok());
  EXPECT_EQ(fixed.scale(), 128);
  config.mode = PrecisionConfig::Mode::kBf16;
  EXPECT_FALSE(LossScaler(config).enabled());
  EXPECT_EQ(LossScaler(config).scale(), 1.0);
}

}  // namespace
}  // namespace spillway
