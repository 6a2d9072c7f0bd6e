// Training on the CUDA backend (ctest label `gpu`): it tracks the CPU reference's loss curve,
// and is itself deterministic: resume and activation checkpointing are bitwise, as on the CPU.
// Skips when this build has no CUDA or there is no GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "kernels/backend.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::MakeTrainer;
using testing_util::SmallConfig;

// fp32 on both backends, reductions in different orders: losses drift apart slowly.
constexpr double kLossRelTol = 1e-3;

class GpuTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<kernels::Ops>> ops = kernels::CreateOps("cuda");
    if (!ops.ok()) GTEST_SKIP() << "no CUDA backend here: " << ops.status().message();
  }
};

// The run `make_config` describes, on the CPU and on the GPU.
void ExpectGpuTracksCpu(std::string (*make_config)(int64_t, const std::string&, int64_t,
                                                   const std::string&),
                        const std::string& name) {
  auto cpu = MakeTrainer(make_config(12, FreshDir(name + "_cpu"), 0, "cpu"));
  auto gpu = MakeTrainer(make_config(12, FreshDir(name + "_gpu"), 0, "cuda"));
  const double cpu_initial = cpu->Evaluate().value();
  EXPECT_NEAR(gpu->Evaluate().value(), cpu_initial, 1e-5 * cpu_initial);
  ASSERT_TRUE(cpu->Train().ok());
  absl::Status trained = gpu->Train();
  ASSERT_TRUE(trained.ok()) << trained;
  ASSERT_EQ(cpu->step_losses().size(), gpu->step_losses().size());
  for (size_t i = 0; i < cpu->step_losses().size(); ++i) {
    const double want = cpu->step_losses()[i];
    EXPECT_NEAR(gpu->step_losses()[i], want, kLossRelTol * want) << "step " << i + 1;
  }
  const double cpu_final = cpu->Evaluate().value();
  EXPECT_NEAR(gpu->Evaluate().value(), cpu_final, kLossRelTol * cpu_final);
  EXPECT_LT(cpu_final, cpu_initial);
}

TEST_F(GpuTrainingTest, TracksTheCpuLossCurve) { ExpectGpuTracksCpu(SmallConfig, "curve"); }

// bf16 / fp16 on both backends (16-bit matmul operands; the CPU rounds them to nearest even,
// cuBLAS converts them itself): the loss curves agree within 2% (bf16) and 0.5% (fp16).
void ExpectMixedPrecisionTracksCpu(const std::string& section, double tol,
                                   const std::string& name) {
  const auto with = [&](const std::string& json) {
    return absl::StrReplaceAll(json, {{R"("steps_per_print": 2,)",
                                       absl::StrCat(R"("steps_per_print": 2, )", section, ",")}});
  };
  auto cpu = MakeTrainer(with(SmallConfig(12, FreshDir(name + "_cpu"), 0, "cpu")));
  auto gpu = MakeTrainer(with(SmallConfig(12, FreshDir(name + "_gpu"), 0, "cuda")));
  ASSERT_TRUE(cpu->Train().ok());
  absl::Status trained = gpu->Train();
  ASSERT_TRUE(trained.ok()) << trained;
  ASSERT_EQ(cpu->step_losses().size(), gpu->step_losses().size());
  for (size_t i = 0; i < cpu->step_losses().size(); ++i) {
    const double want = cpu->step_losses()[i];
    EXPECT_NEAR(gpu->step_losses()[i], want, tol * want) << "step " << i + 1;
  }
  EXPECT_EQ(gpu->skipped_steps(), cpu->skipped_steps());
  EXPECT_EQ(gpu->loss_scale(), cpu->loss_scale());
}

TEST_F(GpuTrainingTest, Bf16TracksTheCpuBf16LossCurve) {
  ExpectMixedPrecisionTracksCpu(R"("bf16": {"enabled": true})", 2e-2, "bf16");
}

TEST_F(GpuTrainingTest, Fp16TracksTheCpuFp16LossCurve) {
  ExpectMixedPrecisionTracksCpu(R"("fp16": {"enabled": true})", 5e-3, "fp16");
}

// A huge initial scale overflows fp16 on the GPU too: steps are skipped and the scale backs
// off as on the CPU, then training proceeds.
TEST_F(GpuTrainingTest, Fp16OverflowBacksOff) {
  const std::string section = R"("fp16": {"enabled": true, "initial_scale_power": 30})";
  std::string json = SmallConfig(20, FreshDir("fp16_overflow_gpu"), 0, "cuda");
  json = absl::StrReplaceAll(json, {{R"("steps_per_print": 2,)",
                                     absl::StrCat(R"("steps_per_print": 2, )", section, ",")}});
  auto gpu = MakeTrainer(json);
  absl::Status trained = gpu->Train();
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_GT(gpu->skipped_steps(), 1);
  EXPECT_LT(gpu->skipped_steps(), 20);
  EXPECT_LT(gpu->loss_scale(), std::ldexp(1.0, 30));
  EXPECT_LT(gpu->step_losses().back(), gpu->step_losses().front());
}

TEST_F(GpuTrainingTest, LlamaTracksTheCpuLossCurve) {
  ExpectGpuTracksCpu(testing_util::SmallLlamaConfig, "llama_curve");
}

TEST_F(GpuTrainingTest, ResumeIsBitwise) {
  const std::string dir_a = FreshDir("gpu_uninterrupted");
  const std::string dir_b = FreshDir("gpu_resumed");
  auto full = MakeTrainer(SmallConfig(10, dir_a, 0, "cuda"));
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(MakeTrainer(SmallConfig(6, dir_b, 0, "cuda"))->Train().ok());
  auto resumed = MakeTrainer(SmallConfig(10, dir_b, 0, "cuda"));
  absl::Status status = resumed->Resume(dir_b + "/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(resumed->Train().ok());
  ASSERT_EQ(resumed->step_losses().size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(full->step_losses()[6 + i], resumed->step_losses()[i]) << "step " << 7 + i;
  }
  EXPECT_EQ(full->Evaluate().value(), resumed->Evaluate().value());
}

TEST_F(GpuTrainingTest, ActivationCheckpointingIsBitwise) {
  auto plain = MakeTrainer(SmallConfig(5, FreshDir("gpu_plain"), 0, "cuda"));
  std::string json = SmallConfig(5, FreshDir("gpu_recompute"), 0, "cuda");
  json.insert(json.find('{') + 1, R"("activation_checkpointing": {"enabled": true},)");
  auto recompute = MakeTrainer(json);
  ASSERT_TRUE(plain->Train().ok());
  ASSERT_TRUE(recompute->Train().ok());
  EXPECT_EQ(plain->step_losses(), recompute->step_losses());
}

}  // namespace
}  // namespace spillway
