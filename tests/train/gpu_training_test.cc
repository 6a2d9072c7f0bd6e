// Training on the CUDA backend (ctest label `gpu`): it tracks the CPU reference's loss curve,
// and replaying a step as a graph trains bitwise as issuing it op by op.
// Skips when this build has no CUDA or there is no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/config/config.h"
#include "engine/train/trainer.h"
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

// cuBLASLt's FAST_16F conversion does not turn out-of-range operands into infinity (measured on
// an H100: a scale of 2^30 never overflowed, where the CPU reference skips steps), so on the
// GPU a too-large fp16 scale costs nothing: training with 2^30 tracks training with 2^16.
TEST_F(GpuTrainingTest, Fp16HugeScaleDoesNotOverflowOnCuda) {
  const auto run = [](const std::string& power, const std::string& name) {
    std::string json = SmallConfig(12, FreshDir(name), 0, "cuda");
    json = absl::StrReplaceAll(json,
                               {{R"("steps_per_print": 2,)",
                                 absl::StrCat(R"("steps_per_print": 2, "fp16": {"enabled": true, )",
                                              R"("initial_scale_power": )", power, "},")}});
    auto trainer = MakeTrainer(json);
    absl::Status trained = trainer->Train();
    EXPECT_TRUE(trained.ok()) << trained;
    return trainer;
  };
  auto huge = run("30", "fp16_huge_gpu");
  auto usual = run("16", "fp16_usual_gpu");
  EXPECT_EQ(huge->skipped_steps(), 0);
  ASSERT_EQ(huge->step_losses().size(), usual->step_losses().size());
  for (size_t i = 0; i < huge->step_losses().size(); ++i) {
    const double want = usual->step_losses()[i];
    EXPECT_NEAR(huge->step_losses()[i], want, 5e-3 * want) << "step " << i + 1;
  }
}

// trainer.cuda_graphs: from the second step the forward and backward replay as one graph, and
// the run is bitwise the one that issues them op by op (evals between steps included). bf16 at
// head size 64: the tensor-core attention and the bf16 kernels; autotuning off in both runs.
TEST_F(GpuTrainingTest, GraphReplaysTrainAsPlainSteps) {
  const auto run = [](bool graphs, const std::string& name, std::string* printed) {
    const std::string json = absl::StrReplaceAll(
        SmallConfig(8, FreshDir(name), 0, "cuda"),
        {{R"("train_batch_size": 4)", R"("train_batch_size": 2)"},
         {R"("steps_per_print": 2,)", R"("steps_per_print": 2, "bf16": {"enabled": true},)"},
         {R"("d_model": 32, "seq_len": 16)", R"("d_model": 128, "seq_len": 64)"},
         {R"("seed": 5,)", absl::StrCat(R"("seed": 5, "matmul_autotune": false, "cuda_graphs": )",
                                        graphs ? "true" : "false", ",")}});
    absl::StatusOr<Config> config = ParseConfig(json);
    EXPECT_TRUE(config.ok()) << config.status();
    std::FILE* out = std::tmpfile();
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, out);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    absl::Status trained = (*trainer)->Train();
    EXPECT_TRUE(trained.ok()) << trained;
    std::rewind(out);
    char chunk[4096];
    for (size_t n; (n = std::fread(chunk, 1, sizeof(chunk), out)) > 0;) printed->append(chunk, n);
    std::fclose(out);
    return std::move(trainer).value();
  };
  std::string graph_log, plain_log;
  auto graph = run(true, "graph_on", &graph_log);
  auto plain = run(false, "graph_off", &plain_log);
  EXPECT_NE(graph_log.find("replay as one graph from step 2"), std::string::npos) << graph_log;
  EXPECT_EQ(plain_log.find("one graph"), std::string::npos) << plain_log;
  ASSERT_EQ(graph->step_losses().size(), 8u);
  EXPECT_EQ(graph->step_losses(), plain->step_losses());
  for (int u = 0; u < graph->model().num_units(); ++u) {
    EXPECT_EQ(graph->StoredParams(u).value(), plain->StoredParams(u).value()) << "unit " << u;
  }
}

}  // namespace
}  // namespace spillway
