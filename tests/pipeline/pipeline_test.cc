// Pipelined training (run under mpirun -np 2 and -np 4, CPU ranks): GPipe and 1F1B over
// `stages` ranks, alone or times data-parallel replicas, train like one rank with the same
// global batch (losses and weights within fp tolerance), each rank holding only its stage's
// Units.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/config/config.h"
#include "engine/train/pipeline_step.h"
#include "engine/train/trainer.h"
#include "nlohmann/json.hpp"
#include "partitioner/mpi_communicator.h"
#include "tests/partitioner/mpi_world.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

// Sums over micro-batches, replicas and the two halves of the tied embedding happen in
// other orders than on one rank; AdamW then moves the trajectories apart slowly.
constexpr double kLossRelTol = 1e-4;
constexpr double kParamRelTol = 1e-4;

using testing_util::World;

struct PipeMareKeys {
  bool t1 = true, t2 = true;
  int warmup_steps = 0;
};

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
  PipeMareKeys pipemare;  // with schedule "pipemare"
  double lr = 0.003;
  int rows = 2;  // per micro-batch and replica
};

std::string PipeMareJson(const PipelineRun& run) {
  if (run.schedule != "pipemare") return "";
  return absl::StrCat(R"(, "pipemare": {"lr_rescheduling": )", run.pipemare.t1 ? "true" : "false",
                      R"(, "discrepancy_correction": )", run.pipemare.t2 ? "true" : "false",
                      R"(, "warmup_steps": )", run.pipemare.warmup_steps, "}");
}

// 3 layers (5 Units), rows of 2 per micro-batch and replica; the reference takes 2 x dp rows
// per micro-batch, so both see the same global batches.
std::string ConfigJson(const PipelineRun& run, bool reference) {
  std::string model = R"("n_layer": 3, "n_head": 2, "d_model": 24, "seq_len": 16,)";
  if (run.model == "llama") {
    model = R"("type": "llama", "n_layer": 3, "n_head": 2, "n_kv_head": 1, "d_model": 24,
               "seq_len": 16,)";
  }
  const std::string batch =
      reference
          ? absl::StrCat(R"("train_micro_batch_size_per_gpu": )", run.rows * run.dp,
                         R"(, "gradient_accumulation_steps": )", run.micro_batches, ",")
          : absl::StrCat(R"("train_micro_batch_size_per_gpu": )", run.rows,
                         R"(, "pipeline": {"stages": )", run.stages, R"(, "micro_batches": )",
                         run.micro_batches, R"(, "schedule": ")", run.schedule,
                         R"(", "partition": ")", run.partition, R"(")", PipeMareJson(run), "},");
  return absl::StrReplaceAll(
      R"({
    BATCH
    "gradient_clipping": 1.0, "steps_per_print": 100,
    "zero_optimization": {"stage": ZERO},
    "activation_checkpointing": {"enabled": CKPT},
    "optimizer": {"type": "AdamW", "params": {"lr": PEAKRATE, "betas": [0.9, 0.95],
                                               "weight_decay": 0.1}},
    "scheduler": {"type": "WarmupCosineLR",
                  "params": {"total_num_steps": TOTAL, "warmup_num_steps": 3}},
    "model": {MODEL "vocab_size": 256},
    "data": {"synthetic": {"seed": 3, "train_tokens": 20000}},
    "trainer": {"steps": STEPS, "seed": 5, "backend": "cpu"}
  })",
      {{"BATCH", batch},
       {"ZERO", absl::StrCat(reference ? 0 : run.zero_stage)},
       {"CKPT", run.checkpointing ? "true" : "false"},
       {"MODEL", model},
       {"STEPS", absl::StrCat(run.steps)},
       {"PEAKRATE", absl::StrCat(run.lr)},
       {"TOTAL", absl::StrCat(std::max(12, run.steps))}});
}

std::unique_ptr<Trainer> MakeTrainer(const std::string& json, Communicator& comm) {
  absl::StatusOr<Config> config = ParseConfig(json, comm.world_size());
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr, &comm);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return trainer.ok() ? std::move(trainer).value() : nullptr;
}

// A pipelined run of `run` on all ranks, trained; null (with a test failure) if it failed.
std::unique_ptr<Trainer> TrainPipelined(const PipelineRun& run) {
  auto trainer = MakeTrainer(ConfigJson(run, false), World());
  if (trainer == nullptr) return nullptr;
  absl::Status trained = trainer->Train();
  EXPECT_TRUE(trained.ok()) << trained;
  return trained.ok() ? std::move(trainer) : nullptr;
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
    EXPECT_LT(testing_util::RelativeL2(*mine, *want), kParamRelTol) << model.unit(u).layout.name();
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

// PipeMare on `stages` = all ranks, 2 micro-batches per step after 1 synchronous step: every
// micro-batch's forward on stage s saw the weights of W + max(0, floor((j - w) / m)) updates
// and its backward W + floor(j / m), w = stages - 1 - s (the 1F1B warm-up); the largest gap is
// the stage's tau = ceil(w / m).
void ExpectScriptedDelays(int micro_batches) {
  const int stages = World().world_size();
  if (stages < 2) GTEST_SKIP() << "needs 2 or more ranks";
  PipelineRun run;
  run.stages = stages;
  run.schedule = "pipemare";
  run.micro_batches = micro_batches;
  run.pipemare.warmup_steps = 1;
  run.steps = 7;
  auto trainer = TrainPipelined(run);
  ASSERT_TRUE(trainer != nullptr);
  const int s = World().rank(), w = stages - 1 - s, m = micro_batches;
  const std::vector<int64_t>& fwd = trainer->pipeline_step()->forward_versions();
  const std::vector<int64_t>& bwd = trainer->pipeline_step()->backward_versions();
  ASSERT_EQ(fwd.size(), static_cast<size_t>((run.steps - 1) * m));
  int64_t largest = 0;
  for (int j = 0; j < static_cast<int>(fwd.size()); ++j) {
    EXPECT_EQ(fwd[j], 1 + std::max(0, j - w) / m) << "stage " << s << " micro-batch " << j;
    EXPECT_EQ(bwd[j], 1 + j / m) << "stage " << s << " micro-batch " << j;
    largest = std::max(largest, bwd[j] - fwd[j]);
  }
  EXPECT_EQ(largest, PipeMareDelay(stages, s, m)) << "stage " << s;
  EXPECT_EQ(largest, (w + m - 1) / m);
}

TEST(PipeMareTest, AppliesTheScriptedDelaysOneMicroBatch) { ExpectScriptedDelays(1); }
TEST(PipeMareTest, AppliesTheScriptedDelaysTwoMicroBatches) { ExpectScriptedDelays(2); }

// PipeMare with 2 stages x 2 replicas at ZeRO stage 1 (asynchronous updates inside each stage's
// data-parallel group, GPT-2's embed Unit shared by the first and last stage): the two replicas
// of a stage end with bitwise equal parameters.
TEST(PipeMareTest, ReplicasOfAStageStayEqual) {
  if (World().world_size() != 4) GTEST_SKIP() << "needs 4 ranks";
  PipelineRun run;
  run.stages = 2;
  run.dp = 2;
  run.zero_stage = 1;
  run.schedule = "pipemare";
  run.micro_batches = 2;
  run.pipemare.warmup_steps = 1;
  run.steps = 6;
  auto trainer = TrainPipelined(run);
  ASSERT_TRUE(trainer != nullptr);
  uint64_t hash = 1469598103934665603ull;  // FNV-1a over the held parameters' bytes
  for (int u = 0; u < trainer->model().num_units(); ++u) {
    if (!trainer->model().holds(u)) continue;
    absl::StatusOr<std::vector<float>> params = trainer->StoredParams(u);
    ASSERT_TRUE(params.ok());
    const auto* bytes = reinterpret_cast<const unsigned char*>(params->data());
    for (size_t i = 0; i < params->size() * sizeof(float); ++i) {
      hash = (hash ^ bytes[i]) * 1099511628211ull;
    }
  }
  float mine[2];
  std::memcpy(mine, &hash, sizeof(hash));
  std::vector<float> all(2 * World().world_size());
  ASSERT_TRUE(World().AllGather(mine, all.data(), 2).ok());
  const int partner = World().rank() ^ 1;  // the other replica of this stage
  EXPECT_EQ(std::memcmp(all.data() + 2 * partner, mine, sizeof(hash)), 0);
  EXPECT_EQ(trainer->step_losses().size(), 6u);
  for (double loss : trainer->step_losses()) EXPECT_GT(loss, 0.0);
}

// PipeMare on all ranks as stages: the last stage updates GPT-2's shared embed Unit and the
// first stage takes its weights at the end of the same step, so after the last step the two
// copies are bitwise equal.
TEST(PipeMareTest, TiedEmbedCopiesEndEqual) {
  const int stages = World().world_size();
  if (stages < 2) GTEST_SKIP() << "needs 2 or more ranks";
  PipelineRun run;
  run.stages = stages;
  run.schedule = "pipemare";
  run.micro_batches = 2;
  run.pipemare.warmup_steps = 1;
  run.steps = 6;
  auto trainer = TrainPipelined(run);
  ASSERT_TRUE(trainer != nullptr);
  std::vector<float> embed(trainer->model().unit(0).numel(), 0.0f);
  if (trainer->model().holds(0)) {
    absl::StatusOr<std::vector<float>> params = trainer->StoredParams(0);
    ASSERT_TRUE(params.ok());
    embed = *std::move(params);
  }
  std::vector<float> all(embed.size() * stages);
  ASSERT_TRUE(World().AllGather(embed.data(), all.data(), embed.size()).ok());
  const float* last = all.data() + embed.size() * (stages - 1);
  EXPECT_EQ(std::memcmp(all.data(), last, embed.size() * sizeof(float)), 0);
}

// examples/tiny (its data, 600 steps, learning-rate schedule and clipping) in 4 stages with
// `micro_batches` micro-batches per update, its GPT-2 or a Llama of the same shape (whose
// embedding and LM head are not tied). Pipelined runs have no evaluation, so the final loss is
// the mean training loss of the last kTinyFinalSteps steps (batches the model has not seen).
constexpr int kTinyFinalSteps = 50;

struct TinyRun {
  int micro_batches = 8;
  bool llama = false;
};

std::string TinyExampleJson(const TinyRun& run, const std::string& schedule,
                            const PipeMareKeys& keys) {
  std::ifstream file("examples/tiny/config.json");
  nlohmann::json config = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return "";
  const int64_t rows = config["train_batch_size"].get<int64_t>() / run.micro_batches;
  config["train_micro_batch_size_per_gpu"] = rows;
  config["gradient_accumulation_steps"] = run.micro_batches;
  config["steps_per_print"] = 100;
  config["trainer"]["eval_interval"] = 0;  // not built for pipelined runs
  config.erase("checkpoint");
  config.erase("log");
  if (run.llama) {
    config["model"] = {{"type", "llama"}, {"n_layer", 4},   {"n_head", 4},      {"n_kv_head", 2},
                       {"d_model", 128},  {"seq_len", 128}, {"vocab_size", 256}};
  }
  nlohmann::json pipeline = {
      {"stages", 4}, {"schedule", schedule}, {"micro_batches", run.micro_batches}};
  if (schedule == "pipemare") {
    pipeline["pipemare"] = {{"lr_rescheduling", keys.t1},
                            {"discrepancy_correction", keys.t2},
                            {"warmup_steps", keys.warmup_steps}};
  }
  config["pipeline"] = pipeline;
  return config.dump();
}

struct TinyLosses {
  double first = 0.0, last = 0.0;  // the first step's; the mean of the last kTinyFinalSteps
};

TinyLosses TrainTiny(const TinyRun& run, const std::string& schedule, const PipeMareKeys& keys) {
  const std::string json = TinyExampleJson(run, schedule, keys);
  EXPECT_FALSE(json.empty()) << "examples/tiny/config.json (run from the repository root)";
  auto trainer = json.empty() ? nullptr : MakeTrainer(json, World());
  if (trainer == nullptr) return {};
  absl::Status trained = trainer->Train();
  EXPECT_TRUE(trained.ok()) << trained;
  const std::vector<double>& losses = trainer->step_losses();
  if (losses.size() < kTinyFinalSteps) return {};
  TinyLosses out{losses.front(), 0.0};
  for (size_t i = losses.size() - kTinyFinalSteps; i < losses.size(); ++i) {
    out.last += losses[i] / kTinyFinalSteps;
  }
  return out;
}

double Gap(const TinyLosses& run, const TinyLosses& sync) {
  return 100 * (run.last / sync.last - 1);
}

// The GPT-2 of examples/tiny, 16 micro-batches of one row, no synchronous warm-up: the
// synchronous schedule (GPipe), PipeMare with T1 and T2, and plain asynchrony (neither), both
// with the tied embedding's look-ahead at its default. The test prints the three
// (docs/pipeline.md records them), checks that each schedule trained and that PipeMare with T1
// and T2 ends within 2% of synchronous (+1.5%).
TEST(PipeMareTest, TinyExampleFinalLossAgainstSynchronous) {
  if (World().world_size() != 4) GTEST_SKIP() << "needs 4 ranks";
  const TinyRun run{16, false};
  PipeMareKeys plain_keys;
  plain_keys.t1 = plain_keys.t2 = false;
  const TinyLosses sync = TrainTiny(run, "gpipe", {}),
                   corrected = TrainTiny(run, "pipemare", PipeMareKeys{}),
                   plain = TrainTiny(run, "pipemare", plain_keys);
  if (World().rank() == 0) {
    std::printf(
        "examples/tiny, 4 stages, %d micro-batches per update; final loss (mean of the last %d "
        "steps): synchronous %.4f | PipeMare T1+T2 %.4f (%+.1f%%) | plain asynchrony %.4f "
        "(%+.1f%%)\n",
        run.micro_batches, kTinyFinalSteps, sync.last, corrected.last, Gap(corrected, sync),
        plain.last, Gap(plain, sync));
  }
  for (const TinyLosses& l : {sync, corrected, plain}) EXPECT_LT(l.last, l.first - 1.0);
  EXPECT_LT(Gap(corrected, sync), 2.0);
}

// The Llama of the same shape (its embedding and head untied, so no look-ahead) with 16
// micro-batches of one row: PipeMare with T1 and T2 ends within 2% of the synchronous schedule
// (docs/pipeline.md: +1.5%), which bounds what the schedule's own delays cost.
TEST(PipeMareTest, TinyLlamaWithinTwoPercentOfSynchronous) {
  if (World().world_size() != 4) GTEST_SKIP() << "needs 4 ranks";
  const TinyRun run{16, true};
  const TinyLosses sync = TrainTiny(run, "gpipe", {}),
                   corrected = TrainTiny(run, "pipemare", PipeMareKeys{});
  if (World().rank() == 0) {
    std::printf(
        "Llama of examples/tiny's shape, 4 stages, %d micro-batches per update; final loss: "
        "synchronous %.4f | PipeMare T1+T2 %.4f (%+.1f%%)\n",
        run.micro_batches, sync.last, corrected.last, Gap(corrected, sync));
  }
  for (const TinyLosses& l : {sync, corrected}) EXPECT_LT(l.last, l.first - 1.0);
  EXPECT_LT(Gap(corrected, sync), 2.0);
}

}  // namespace
}  // namespace spillway
