// Pipelined training (run under mpirun -np 2 and -np 4, CPU ranks): GPipe and 1F1B over
// `stages` ranks, alone or times data-parallel replicas, train like one rank with the same
// global batch (losses and weights within fp tolerance), each rank holding only its stage's
// Units.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/config/config.h"
#include "engine/train/trainer.h"
#include "partitioner/mpi_communicator.h"

namespace spillway {
namespace {

// Sums over micro-batches, replicas and the two halves of the tied embedding happen in
// other orders than on one rank; AdamW then moves the trajectories apart slowly.
constexpr double kLossRelTol = 1e-4;
constexpr double kParamRelTol = 1e-4;

Communicator& World() {
  static std::unique_ptr<Communicator> comm = [] {
    absl::StatusOr<std::unique_ptr<Communicator>> c = MpiCommunicator::Create();
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(c).value();
  }();
  return *comm;
}

struct PipelineRun {
  std::string model = "gpt2";
  int stages = 1;  // 1: the one-rank reference
  int dp = 1;      // the data-parallel width of the pipelined run
  int micro_batches = 4;
  std::string schedule = "1f1b";
  std::string partition = "uniform";
  int zero_stage = 0;
  bool checkpointing = false;
  int steps = 5;
};

// 3 layers (5 Units), rows of 2 per micro-batch and replica; the reference takes 2 x dp rows
// per micro-batch, so both see the same global batches.
std::string ConfigJson(const PipelineRun& run, bool reference) {
  const std::string model =
      run.model == "llama"
          ? R"("type": "llama", "n_layer": 3, "n_head": 2, "n_kv_head": 1, "d_model": 24,)"
          : R"("n_layer": 3, "n_head": 2, "d_model": 24,)";
  const std::string batch =
      reference ? absl::StrCat(R"("train_micro_batch_size_per_gpu": )", 2 * run.dp,
                               R"(, "gradient_accumulation_steps": )", run.micro_batches, ",")
                : absl::StrCat(R"("train_micro_batch_size_per_gpu": 2, "pipeline": {"stages": )",
                               run.stages, R"(, "micro_batches": )", run.micro_batches,
                               R"(, "schedule": ")", run.schedule, R"(", "partition": ")",
                               run.partition, R"("},)");
  return absl::StrReplaceAll(
      R"({
    BATCH
    "gradient_clipping": 1.0, "steps_per_print": 100,
    "zero_optimization": {"stage": ZERO},
    "activation_checkpointing": {"enabled": CKPT},
    "optimizer": {"type": "AdamW", "params": {"lr": 0.003, "betas": [0.9, 0.95],
                                               "weight_decay": 0.1}},
    "scheduler": {"type": "WarmupCosineLR",
                  "params": {"total_num_steps": 12, "warmup_num_steps": 3}},
    "model": {MODEL "seq_len": 16, "vocab_size": 256},
    "data": {"synthetic": {"seed": 3, "train_tokens": 20000}},
    "trainer": {"steps": STEPS, "seed": 5, "backend": "cpu"}
  })",
      {{"BATCH", batch},
       {"ZERO", absl::StrCat(reference ? 0 : run.zero_stage)},
       {"CKPT", run.checkpointing ? "true" : "false"},
       {"MODEL", model},
       {"STEPS", absl::StrCat(run.steps)}});
}

std::unique_ptr<Trainer> MakeTrainer(const std::string& json, Communicator& comm) {
  absl::StatusOr<Config> config = ParseConfig(json, comm.world_size());
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr, &comm);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return trainer.ok() ? std::move(trainer).value() : nullptr;
}

double RelL2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

void ExpectPipelineTrainsLikeOneRank(const PipelineRun& run) {
  if (run.stages < 2 || World().world_size() != run.stages * run.dp) {
    GTEST_SKIP() << "needs " << run.stages * run.dp << " ranks";
  }
  auto one = Communicator::Single();
  auto reference = MakeTrainer(ConfigJson(run, /*reference=*/true), *one);
  auto pipelined = MakeTrainer(ConfigJson(run, /*reference=*/false), World());
  ASSERT_TRUE(reference != nullptr && pipelined != nullptr);
  ASSERT_TRUE(reference->Train().ok());
  {
    absl::Status trained = pipelined->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  ASSERT_EQ(pipelined->step_losses().size(), reference->step_losses().size());
  for (size_t i = 0; i < reference->step_losses().size(); ++i) {
    const double want = reference->step_losses()[i];
    EXPECT_NEAR(pipelined->step_losses()[i], want, kLossRelTol * want) << "step " << i + 1;
  }
  Model& model = pipelined->model();
  int held = 0;
  for (int u = 0; u < model.num_units(); ++u) {
    if (!model.holds(u)) {
      EXPECT_EQ(model.unit(u).params.bytes() + model.unit(u).exp_avg.bytes(), 0u);
      continue;
    }
    ++held;
    absl::StatusOr<std::vector<float>> mine = pipelined->StoredParams(u);
    absl::StatusOr<std::vector<float>> want = reference->StoredParams(u);
    ASSERT_TRUE(mine.ok() && want.ok());
    EXPECT_LT(RelL2(*mine, *want), kParamRelTol) << model.unit(u).layout.name();
  }
  EXPECT_LT(held, model.num_units()) << "a stage holds only its Units";
}

TEST(PipelineTest, GPipeTrainsLikeOneRank) {
  PipelineRun run;
  run.stages = World().world_size();
  run.schedule = "gpipe";
  ExpectPipelineTrainsLikeOneRank(run);
}

TEST(PipelineTest, OneFOneBTrainsLikeOneRank) {
  PipelineRun run;
  run.stages = World().world_size();
  ExpectPipelineTrainsLikeOneRank(run);
}

TEST(PipelineTest, OneFOneBWithMoreMicroBatchesAndCheckpointing) {
  PipelineRun run;
  run.stages = World().world_size();
  run.micro_batches = 6;
  run.checkpointing = true;
  ExpectPipelineTrainsLikeOneRank(run);
}

TEST(PipelineTest, BalancedPartitionTrainsLikeOneRank) {
  PipelineRun run;
  run.stages = World().world_size();
  run.partition = "balanced";
  ExpectPipelineTrainsLikeOneRank(run);
}

TEST(PipelineTest, LlamaOneFOneBTrainsLikeOneRank) {
  PipelineRun run;
  run.model = "llama";
  run.stages = World().world_size();
  ExpectPipelineTrainsLikeOneRank(run);
}

// 2 stages x 2 data-parallel replicas (4 ranks), gradients all-reduced inside each stage.
TEST(PipelineTest, TwoStagesTimesTwoReplicasTrainLikeOneRank) {
  PipelineRun run;
  run.stages = 2;
  run.dp = 2;
  ExpectPipelineTrainsLikeOneRank(run);
}

TEST(PipelineTest, TwoStagesTimesTwoReplicasAtZeroStageOne) {
  PipelineRun run;
  run.stages = 2;
  run.dp = 2;
  run.zero_stage = 1;
  run.schedule = "gpipe";
  ExpectPipelineTrainsLikeOneRank(run);
}

}  // namespace
}  // namespace spillway
