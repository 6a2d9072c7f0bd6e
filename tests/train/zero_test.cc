// Data parallelism (run under mpirun -np N; alone it is the one-rank case), on CPU ranks, or on
// GPU ranks with SPILLWAY_ZERO_TEST_BACKEND=cuda: N ranks at every ZeRO stage train like one
// rank with the same global batch, stage 1 equals stage 0 and stage 3 equals stage 2 bit for
// bit, state per rank shrinks by N as each stage promises, runs resume bit for bit, and
// checkpoints reshard between rank counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "engine/train/export.h"
#include "kernels/backend.h"
#include "partitioner/mpi_communicator.h"
#include "tests/partitioner/mpi_world.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using testing_util::SmallConfig;

// Sums over ranks and over micro-batches happen in different orders: fp32 rounding, then
// AdamW's normalisation, move the trajectories apart slowly.
constexpr double kLossRelTol = 1e-4;
constexpr double kParamRelTol = 1e-4;

using testing_util::World;

// SPILLWAY_ZERO_TEST_BACKEND=cuda runs the N-rank trainers on GPUs (NCCL; one GPU per rank),
// against one-rank references on the CPU.
std::string RanksBackend() {
  const char* backend = std::getenv("SPILLWAY_ZERO_TEST_BACKEND");
  return backend == nullptr ? "cpu" : backend;
}

std::string OnRanksBackend(std::string json) {
  const std::string cpu = "\"backend\": \"cpu\"";
  const size_t at = json.find(cpu);
  if (at == std::string::npos) {
    ADD_FAILURE() << "no trainer.backend in the test config";
    return json;
  }
  return json.replace(at, cpu.size(), "\"backend\": \"" + RanksBackend() + "\"");
}

// GPU ranks need a GPU each (ctest runs this test with 2 ranks on every GPU machine).
#define SKIP_WITHOUT_RANK_GPUS()                                             \
  if (RanksBackend() != "cpu" && kernels::GpuCount() < World().world_size()) \
  GTEST_SKIP() << "needs one GPU per rank"

// Tests that read the Units' buffers directly need host memory.
#define SKIP_ON_GPU_RANKS() \
  if (RanksBackend() != "cpu") GTEST_SKIP() << "reads host buffers; CPU ranks cover it"

// A directory every rank sees, made fresh by rank 0. Named by the world size, so the runs with
// different rank counts that ctest starts side by side do not share it.
std::string SharedDir(const std::string& name) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/zero_test_np", World().world_size(), "_", name);
  if (World().rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  EXPECT_TRUE(World().Barrier().ok());
  return dir;
}

// 8 sequences per step: accumulation 4 on one rank, 2 on two, 1 on four. d_model 18 makes the
// Units' sizes odd multiples of 2, so shards on 4 ranks end in padding.
std::string ZeroConfig(int64_t steps, const std::string& dir, int stage) {
  std::string json = SmallConfig(steps, dir);
  json.replace(json.find("\"d_model\": 32"), 13, "\"d_model\": 18");
  json = absl::StrCat("{\"zero_optimization\": {\"stage\": ", stage, "},",
                      json.substr(json.find('{') + 1));
  size_t at = json.find("\"train_batch_size\": 4");
  return json.replace(at, std::string("\"train_batch_size\": 4").size(), "\"train_batch_size\": 8");
}

// Trainers on World() run on the ranks' backend; one-rank references on the CPU.
std::unique_ptr<Trainer> MakeTrainer(std::string json, Communicator& comm) {
  if (&comm == &World()) json = OnRanksBackend(json);
  absl::StatusOr<Config> config = ParseConfig(json, comm.world_size());
  EXPECT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr, &comm);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return std::move(trainer).value();
}

TEST(ZeroTest, StageOneEqualsStageZeroWithShardedOptimizerState) {
  SKIP_WITHOUT_RANK_GPUS();
  SKIP_ON_GPU_RANKS();
  const std::string dir = SharedDir("stage1");
  auto stage0 = MakeTrainer(ZeroConfig(6, dir + "/stage0", 0), World());
  auto stage1 = MakeTrainer(ZeroConfig(6, dir + "/stage1", 1), World());
  {
    absl::Status trained = stage0->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  {
    absl::Status trained = stage1->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(stage0->step_losses(), stage1->step_losses());
  size_t bytes0 = 0, bytes1 = 0;
  for (int u = 0; u < stage0->model().num_units(); ++u) {
    const UnitState& a = stage0->model().unit(u);
    const UnitState& b = stage1->model().unit(u);
    EXPECT_EQ(std::memcmp(a.params.data(), b.params.data(), a.params.bytes()), 0)
        << a.layout.name();
    bytes0 += a.exp_avg.bytes() + a.exp_avg_sq.bytes();
    bytes1 += b.exp_avg.bytes() + b.exp_avg_sq.bytes();
  }
  EXPECT_EQ(bytes1 * World().world_size(), bytes0) << "AdamW state per rank shrinks by N";
}

TEST(ZeroTest, ResumeOnNRanksIsBitwise) {
  SKIP_WITHOUT_RANK_GPUS();
  const std::string dir = SharedDir("resume");
  auto full = MakeTrainer(ZeroConfig(8, dir + "/full", 1), World());
  {
    absl::Status trained = full->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  {
    absl::Status trained = MakeTrainer(ZeroConfig(5, dir + "/split", 1), World())->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  auto resumed = MakeTrainer(ZeroConfig(8, dir + "/split", 1), World());
  absl::Status status = resumed->Resume(dir + "/split/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  {
    absl::Status trained = resumed->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  ASSERT_EQ(resumed->step_losses().size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(full->step_losses()[5 + i], resumed->step_losses()[i]) << "step " << 6 + i;
  }
}

// A checkpoint written by N ranks (stage 1: sharded AdamW state) loads on one rank with exactly
// the same state, and the one rank's checkpoint loads back on N ranks exactly.
TEST(ZeroTest, CheckpointsReshardBetweenRankCounts) {
  SKIP_WITHOUT_RANK_GPUS();
  SKIP_ON_GPU_RANKS();
  const std::string dir = SharedDir("reshard");
  auto ranks = MakeTrainer(ZeroConfig(4, dir + "/ranks", 1), World());
  {
    absl::Status trained = ranks->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  auto one = Communicator::Single();
  const std::string single_dir = absl::StrCat(dir, "/single_rank", World().rank());
  auto single = MakeTrainer(ZeroConfig(8, single_dir, 0), *one);
  absl::Status status = single->Resume(dir + "/ranks/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(single->step(), 4);
  ASSERT_TRUE(single->SaveCheckpoint().ok());
  ASSERT_TRUE(World().Barrier().ok());
  // The N-rank checkpoint exported to one file holds the same parameters.
  if (World().rank() == 0) {
    absl::StatusOr<ExportReport> exported =
        ExportCheckpoint(single->model().config(), dir + "/ranks/ckpt", dir + "/model.safetensors");
    ASSERT_TRUE(exported.ok()) << exported.status();
    EXPECT_EQ(exported->saved_ranks, World().world_size());
    absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(dir + "/model.safetensors");
    ASSERT_TRUE(file.ok()) << file.status();
    const SafetensorsTensorInfo* fc = file->Find("h.1.mlp.c_fc.weight");
    ASSERT_NE(fc, nullptr);
    EXPECT_EQ(std::memcmp(fc->data.data(), single->model().FindParam("h.1.mlp.c_fc.weight"),
                          fc->data.size()),
              0);
  }
  auto back = MakeTrainer(ZeroConfig(8, dir + "/back", 1), World());
  status = back->Resume(dir + "/single_rank0/ckpt");
  ASSERT_TRUE(status.ok()) << status;

  for (int u = 0; u < ranks->model().num_units(); ++u) {
    const UnitState& sharded = ranks->model().unit(u);
    const UnitState& whole = single->model().unit(u);
    const UnitState& reloaded = back->model().unit(u);
    const size_t numel = whole.numel();
    EXPECT_EQ(std::memcmp(sharded.params.data(), whole.params.data(), numel * sizeof(float)), 0)
        << sharded.layout.name() << ": N -> 1 parameters";
    EXPECT_EQ(std::memcmp(reloaded.params.data(), whole.params.data(), numel * sizeof(float)), 0)
        << sharded.layout.name() << ": 1 -> N parameters";
    // This rank's shard of the AdamW moments, against the same elements of the whole ones.
    const size_t begin = std::min(sharded.shard.begin, numel);
    const size_t n = std::min(sharded.shard.end, numel) - begin;
    const float* m_whole = whole.exp_avg.as<float>() + begin;
    EXPECT_EQ(std::memcmp(sharded.exp_avg.data(), m_whole, n * sizeof(float)), 0)
        << sharded.layout.name() << ": N -> 1 Adam m";
    EXPECT_EQ(std::memcmp(reloaded.exp_avg.data(), m_whole, n * sizeof(float)), 0)
        << sharded.layout.name() << ": 1 -> N Adam m";
    const float* v_whole = whole.exp_avg_sq.as<float>() + begin;
    EXPECT_EQ(std::memcmp(reloaded.exp_avg_sq.data(), v_whole, n * sizeof(float)), 0)
        << sharded.layout.name() << ": 1 -> N Adam v";
  }
}

// The flat elements of Unit `u` this rank stores in `params` (all, or its shard at stage 3)
// against the same elements of a one-rank trainer's whole parameters.
double ParamRelL2(Trainer& ranks, Trainer& reference, int u) {
  const UnitState& a = ranks.model().unit(u);
  const size_t begin = a.params_sharded() ? std::min(a.shard.begin, a.numel()) : 0;
  const size_t end = a.params_sharded() ? std::min(a.shard.end, a.numel()) : a.numel();
  if (begin == end) return 0.0;
  absl::StatusOr<std::vector<float>> mine = ranks.StoredParams(u);
  absl::StatusOr<std::vector<float>> whole = reference.StoredParams(u);
  EXPECT_TRUE(mine.ok() && whole.ok());
  if (!mine.ok() || !whole.ok()) return 1.0;
  return testing_util::RelativeL2({mine->data() + a.param_index(begin), end - begin},
                                  {whole->data() + begin, end - begin});
}

std::string WithZeroKeys(std::string json, const std::string& keys) {
  const std::string at = "\"zero_optimization\": {";
  return json.insert(json.find(at) + at.size(), keys + ", ");
}

// ZeroConfig with a Llama (grouped-query attention, untied head) in place of its GPT-2.
// `json` with 8-bit Adam m and v (compact optimizer state).
std::string Int8State(std::string json) {
  const std::string at = R"("weight_decay": 0.1)";
  return json.insert(json.find(at) + at.size(), R"(, "state_dtype": "int8")");
}

std::string LlamaZeroConfig(int64_t steps, const std::string& dir, int stage) {
  std::string json = ZeroConfig(steps, dir, stage);
  const std::string gpt2 = R"("n_layer": 2, "n_head": 2, "d_model": 18,)";
  return json.replace(
      json.find(gpt2), gpt2.size(),
      R"("type": "llama", "n_layer": 2, "n_head": 2, "n_kv_head": 1, "d_model": 24,)");
}

// N ranks at `stage` against one rank with the same global batch, both from `make_config`.
void ExpectNRanksTrainLikeOneRank(std::string (*make_config)(int64_t, const std::string&, int),
                                  int stage, const std::string& name) {
  const std::string dir = SharedDir(absl::StrCat(name, stage, "_vs_one"));
  auto one = Communicator::Single();
  auto reference =
      MakeTrainer(make_config(8, absl::StrCat(dir, "/reference_rank", World().rank()), 0), *one);
  auto ranks = MakeTrainer(make_config(8, dir + "/ranks", stage), World());
  ASSERT_TRUE(reference->Train().ok());
  {
    absl::Status trained = ranks->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  ASSERT_EQ(ranks->step_losses().size(), reference->step_losses().size());
  for (size_t i = 0; i < reference->step_losses().size(); ++i) {
    const double want = reference->step_losses()[i];
    EXPECT_NEAR(ranks->step_losses()[i], want, kLossRelTol * want) << "step " << i + 1;
  }
  for (int u = 0; u < reference->model().num_units(); ++u) {
    EXPECT_LT(ParamRelL2(*ranks, *reference, u), kParamRelTol)
        << reference->model().unit(u).layout.name();
  }
}

class ZeroStageTest : public ::testing::TestWithParam<int> {};

TEST_P(ZeroStageTest, NRanksTrainLikeOneRank) {
  SKIP_WITHOUT_RANK_GPUS();
  ExpectNRanksTrainLikeOneRank(ZeroConfig, GetParam(), "stage");
}

TEST_P(ZeroStageTest, LlamaNRanksTrainLikeOneRank) {
  SKIP_WITHOUT_RANK_GPUS();
  if (GetParam() < 2) GTEST_SKIP() << "the residency hooks matter at stages 2-3";
  ExpectNRanksTrainLikeOneRank(LlamaZeroConfig, GetParam(), "llama_stage");
}

INSTANTIATE_TEST_SUITE_P(Stages, ZeroStageTest, ::testing::Values(0, 1, 2, 3));

// Stage 3 computes exactly what stage 2 does (the gathered parameters are the same numbers),
// whatever the prefetch depth and whether collectives overlap with compute.
TEST(ZeroTest, StageThreeEqualsStageTwoBitwise) {
  SKIP_WITHOUT_RANK_GPUS();
  const std::string dir = SharedDir("stage3_vs_2");
  auto stage2 = MakeTrainer(ZeroConfig(6, dir + "/stage2", 2), World());
  ASSERT_TRUE(stage2->Train().ok());
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"default", ""},
      {"prefetch1", "\"stage3_prefetch_bucket_size\": 1"},
      {"no_overlap", "\"overlap_comm\": false"},
  };
  for (const auto& [name, keys] : variants) {
    std::string json = ZeroConfig(6, dir + "/stage3_" + name, 3);
    if (!keys.empty()) json = WithZeroKeys(json, keys);
    auto stage3 = MakeTrainer(json, World());
    absl::Status trained = stage3->Train();
    ASSERT_TRUE(trained.ok()) << name << ": " << trained;
    EXPECT_EQ(stage3->step_losses(), stage2->step_losses()) << name;
    for (int u = 0; u < stage2->model().num_units(); ++u) {
      EXPECT_EQ(ParamRelL2(*stage3, *stage2, u), 0.0)
          << name << ": " << stage2->model().unit(u).layout.name();
    }
  }
  // The optimizer offloaded to the CPU changes nothing either.
  std::string offload_json = ZeroConfig(6, dir + "/stage2_offload", 2);
  offload_json = WithZeroKeys(offload_json, "\"offload_optimizer\": {\"device\": \"cpu\"}");
  auto stage2_offload = MakeTrainer(offload_json, World());
  ASSERT_TRUE(stage2_offload->Train().ok());
  EXPECT_EQ(stage2_offload->step_losses(), stage2->step_losses());
  for (int u = 0; u < stage2->model().num_units(); ++u) {
    EXPECT_EQ(ParamRelL2(*stage2_offload, *stage2, u), 0.0)
        << "offload: " << stage2->model().unit(u).layout.name();
  }
  // Overlap or not, stage 2 itself is bitwise reproducible.
  auto stage2_sync = MakeTrainer(
      WithZeroKeys(ZeroConfig(6, dir + "/stage2_sync", 2), "\"overlap_comm\": false"), World());
  ASSERT_TRUE(stage2_sync->Train().ok());
  EXPECT_EQ(stage2_sync->step_losses(), stage2->step_losses());
}

// Trains ZeroConfig at `stage` on World(), clipped and not, with `keys` added to
// zero_optimization and without, and expects bitwise-equal losses and parameters.
void ExpectOffloadEqualsInBackend(const std::string& dir, int stage, const std::string& keys) {
  for (const bool clipped : {true, false}) {
    const std::string name = absl::StrCat("stage", stage, clipped ? "_clipped" : "_unclipped");
    SCOPED_TRACE(name);
    std::string reference_json = ZeroConfig(6, dir + "/" + name, stage);
    if (!clipped) {
      reference_json = absl::StrReplaceAll(
          reference_json, {{R"("gradient_clipping": 1.0)", R"("gradient_clipping": 0)"}});
    }
    const std::string offload_json =
        WithZeroKeys(absl::StrReplaceAll(reference_json, {{name, name + "_offload"}}), keys);
    auto reference = MakeTrainer(reference_json, World());
    auto offloaded = MakeTrainer(offload_json, World());
    ASSERT_TRUE(reference->Train().ok());
    absl::Status trained = offloaded->Train();
    ASSERT_TRUE(trained.ok()) << trained;
    EXPECT_EQ(offloaded->step_losses(), reference->step_losses());
    for (int u = 0; u < reference->model().num_units(); ++u) {
      EXPECT_EQ(offloaded->StoredParams(u).value(), reference->StoredParams(u).value())
          << reference->model().unit(u).layout.name();
    }
  }
}

// The optimizer offloaded to the CPU (its step overlapped with the backward, Unit by Unit)
// equals the in-backend optimizer bitwise at stages 0-3, with gradient clipping (every CPU
// step waits for the global norm) and without (each starts as its gradient lands), and so does
// partial offload.
TEST(ZeroTest, OffloadedOptimizerEqualsInBackendAtEveryStage) {
  SKIP_WITHOUT_RANK_GPUS();
  const std::string dir = SharedDir("offload_stages");
  for (int stage = 0; stage <= 3; ++stage) {
    ExpectOffloadEqualsInBackend(dir, stage, R"("offload_optimizer": {"device": "cpu"})");
  }
  // Partial offload (ratio 0.5): the first Units step in the backend, the last on the CPU.
  for (int stage : {1, 3}) {
    ExpectOffloadEqualsInBackend(dir + "/partial", stage,
                                 R"("offload_optimizer": {"device": "cpu", "ratio": 0.5})");
  }
}

// ExpectOffloadEqualsInBackend at stage 3, then: a run split by a checkpoint resumes bit for
// bit, parameters included.
void ExpectStageThreeOffloadEqualsInBackendAndResumes(const std::string& dir,
                                                      const std::string& keys) {
  ExpectOffloadEqualsInBackend(dir, 3, keys);
  auto full = MakeTrainer(WithZeroKeys(ZeroConfig(6, dir + "/full", 3), keys), World());
  ASSERT_TRUE(full->Train().ok());
  const std::string split = dir + "/split";
  ASSERT_TRUE(MakeTrainer(WithZeroKeys(ZeroConfig(3, split, 3), keys), World())->Train().ok());
  testing_util::ExpectResumesLike(
      *full, *MakeTrainer(WithZeroKeys(ZeroConfig(6, split, 3), keys), World()), split + "/ckpt", 3,
      true);
}

// Parameters in CPU memory too (offload_param "cpu", stage 3): each rank copies its shard up
// and all-gathers it in place, reduce-scatters in place and brings its part of the gradient
// down; bitwise equal to stage 3 with everything in the backend, clipped or not, and resumes
// bit for bit; also with only the last Units offloaded (offload_optimizer.ratio).
TEST(ZeroTest, OffloadedParametersEqualStageThreeInBackendAndResume) {
  SKIP_WITHOUT_RANK_GPUS();
  // One rank in the backend trains as stage 0 (offload_test compares with it).
  if (World().world_size() == 1) GTEST_SKIP() << "needs several ranks (mpirun -np N)";
  const std::string dir = SharedDir("offload_params");
  const std::string keys =
      R"("offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "cpu"})";
  ExpectStageThreeOffloadEqualsInBackendAndResumes(dir, keys);
  // Partially (offload_optimizer.ratio 0.5): the first Units wholly in the backend.
  ExpectStageThreeOffloadEqualsInBackendAndResumes(
      dir + "/partial",
      absl::StrReplaceAll(keys, {{R"("offload_optimizer": {"device": "cpu"})",
                                  R"("offload_optimizer": {"device": "cpu", "ratio": 0.5})"}}));
}

// Parameters on NVMe (offload_param "nvme"): each rank reads its parameter shard, the master in
// its own NVMe file, copies it up and all-gathers it in place; bitwise equal to stage 3 with
// everything in the backend, clipped or not, and resumes bit for bit; and over three tiers.
TEST(ZeroTest, ParametersOnNvmeEqualStageThreeInBackendAndResume) {
  SKIP_WITHOUT_RANK_GPUS();
  if (World().world_size() == 1) GTEST_SKIP() << "needs several ranks (mpirun -np N)";
  const std::string dir = SharedDir("nvme_params");
  if (World().rank() == 0) std::filesystem::create_directories(dir + "/nvme");
  ASSERT_TRUE(World().Barrier().ok());
  const std::string keys =
      absl::StrCat("\"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"", dir,
                   "/nvme\", \"buffer_count\": 3, \"buffer_size\": 4096}, ",
                   "\"offload_param\": {\"device\": \"nvme\"}");
  ExpectStageThreeOffloadEqualsInBackendAndResumes(dir, keys);
  // All three tiers with 8-bit state (ratio 0.5: the first Units in the backend; nvme_ratio
  // 0.3: the last Units' shards of master and state on NVMe, the middle ones' in CPU memory),
  // with the parameter cache allocated on every rank (offload_param.max_in_cpu; these few NVMe
  // Units stay gathered, so nothing is read twice: nvme_offload_test has the hits), train
  // bitwise as the same split with the parameters and state in CPU memory.
  const std::string tiers = absl::StrReplaceAll(
      keys,
      {{R"("buffer_size": 4096})", R"("buffer_size": 4096, "ratio": 0.5, "nvme_ratio": 0.3})"},
       {R"("offload_param": {"device": "nvme"})",
        R"("offload_param": {"device": "nvme", "max_in_cpu": 1e9})"}});
  const std::string tiers_cpu =
      R"("offload_optimizer": {"device": "cpu", "ratio": 0.5}, "offload_param": {"device": "cpu"})";
  auto on_nvme =
      MakeTrainer(Int8State(WithZeroKeys(ZeroConfig(6, dir + "/tiers", 3), tiers)), World());
  auto in_memory = MakeTrainer(
      Int8State(WithZeroKeys(ZeroConfig(6, dir + "/tiers_cpu", 3), tiers_cpu)), World());
  for (Trainer* t : {on_nvme.get(), in_memory.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(on_nvme->step_losses(), in_memory->step_losses());
  for (int u = 0; u < on_nvme->model().num_units(); ++u) {
    EXPECT_EQ(on_nvme->StoredParams(u).value(), in_memory->StoredParams(u).value()) << u;
  }
  EXPECT_GT(on_nvme->param_reader()->cache_count(), 0);
}

// With the optimizer state on NVMe (a file per rank, small tiles so that every shard streams in
// several), every stage trains exactly as with the optimizer in the backend, and resumes bit for
// bit from a checkpoint that holds the NVMe-resident moments.
TEST(ZeroTest, NvmeOptimizerStateEqualsInBackendAtEveryStageAndResumes) {
  SKIP_WITHOUT_RANK_GPUS();
  const std::string dir = SharedDir("nvme");
  if (World().rank() == 0) std::filesystem::create_directories(dir + "/nvme");
  ASSERT_TRUE(World().Barrier().ok());
  const std::string nvme =
      absl::StrCat("\"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"", dir,
                   "/nvme\", \"buffer_count\": 3, \"buffer_size\": 4096}");
  for (int stage : {0, 1, 2, 3}) {
    const std::string name = absl::StrCat("stage", stage);
    auto in_backend = MakeTrainer(ZeroConfig(6, dir + "/" + name, stage), World());
    auto on_nvme =
        MakeTrainer(WithZeroKeys(ZeroConfig(6, dir + "/" + name + "_nvme", stage), nvme), World());
    ASSERT_TRUE(in_backend->Train().ok());
    absl::Status trained = on_nvme->Train();
    ASSERT_TRUE(trained.ok()) << name << ": " << trained;
    EXPECT_EQ(on_nvme->step_losses(), in_backend->step_losses()) << name;
    for (int u = 0; u < in_backend->model().num_units(); ++u) {
      EXPECT_EQ(on_nvme->StoredParams(u).value(), in_backend->StoredParams(u).value())
          << name << ": " << in_backend->model().unit(u).layout.name();
    }
  }
  // Compact (8-bit) moments on NVMe equal them on the CPU tier, shard by shard.
  auto int8_cpu =
      MakeTrainer(Int8State(WithZeroKeys(ZeroConfig(6, dir + "/int8_cpu", 2),
                                         "\"offload_optimizer\": {\"device\": \"cpu\"}")),
                  World());
  auto int8_nvme =
      MakeTrainer(Int8State(WithZeroKeys(ZeroConfig(6, dir + "/int8_nvme", 2), nvme)), World());
  ASSERT_TRUE(int8_cpu->Train().ok());
  ASSERT_TRUE(int8_nvme->Train().ok());
  EXPECT_EQ(int8_cpu->step_losses(), int8_nvme->step_losses());
  for (int u = 0; u < int8_cpu->model().num_units(); ++u) {
    EXPECT_EQ(int8_cpu->StoredParams(u).value(), int8_nvme->StoredParams(u).value());
  }
  auto full = MakeTrainer(WithZeroKeys(ZeroConfig(8, dir + "/full", 2), nvme), World());
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(
      MakeTrainer(WithZeroKeys(ZeroConfig(5, dir + "/split", 2), nvme), World())->Train().ok());
  testing_util::ExpectResumesLike(
      *full, *MakeTrainer(WithZeroKeys(ZeroConfig(8, dir + "/split", 2), nvme), World()),
      dir + "/split/ckpt", 3, false);
}

// Per rank, stage 1 stores 1/N of the AdamW state, stage 2 also 1/N of the gradients, stage 3
// also 1/N of the parameters (the Units' buffers; working buffers are reported apart).
TEST(ZeroTest, StateBytesPerRankShrinkByTheWorldSize) {
  SKIP_WITHOUT_RANK_GPUS();
  const std::string dir = SharedDir("memory");
  const size_t N = World().world_size();
  struct Bytes {
    size_t params = 0, grads = 0, optimizer = 0;
  };
  std::vector<Bytes> bytes;
  for (int stage = 0; stage <= 3; ++stage) {
    auto t = MakeTrainer(ZeroConfig(1, absl::StrCat(dir, "/s", stage), stage), World());
    Bytes b;
    for (int u = 0; u < t->model().num_units(); ++u) {
      const UnitState& unit = t->model().unit(u);
      b.params += unit.params.bytes();
      b.grads += unit.grads.bytes();
      b.optimizer += unit.exp_avg.bytes() + unit.exp_avg_sq.bytes();
    }
    bytes.push_back(b);
  }
  EXPECT_EQ(bytes[1].optimizer * N, bytes[0].optimizer);
  EXPECT_EQ(bytes[1].grads, bytes[0].grads);
  EXPECT_EQ(bytes[2].grads * N, bytes[0].grads);
  EXPECT_EQ(bytes[2].params, bytes[0].params);
  EXPECT_EQ(bytes[3].params * N, bytes[0].params);
  EXPECT_EQ(bytes[3].grads * N, bytes[0].grads);
  EXPECT_EQ(bytes[3].optimizer * N, bytes[0].optimizer);
}

// A stage-3 run (parameters sharded) resumes bitwise and its checkpoint loads on one rank.
TEST(ZeroTest, StageThreeResumesBitwiseAndReshards) {
  SKIP_WITHOUT_RANK_GPUS();
  const std::string dir = SharedDir("stage3_resume");
  auto full = MakeTrainer(ZeroConfig(6, dir + "/full", 3), World());
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(MakeTrainer(ZeroConfig(4, dir + "/split", 3), World())->Train().ok());
  auto resumed = MakeTrainer(ZeroConfig(6, dir + "/split", 3), World());
  absl::Status status = resumed->Resume(dir + "/split/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(resumed->Train().ok());
  ASSERT_EQ(resumed->step_losses().size(), 2u);
  EXPECT_EQ(resumed->step_losses()[0], full->step_losses()[4]);
  EXPECT_EQ(resumed->step_losses()[1], full->step_losses()[5]);

  auto one = Communicator::Single();
  auto single =
      MakeTrainer(ZeroConfig(6, absl::StrCat(dir, "/single_rank", World().rank()), 0), *one);
  status = single->Resume(dir + "/full/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  for (int u = 0; u < full->model().num_units(); ++u) {
    EXPECT_EQ(ParamRelL2(*full, *single, u), 0.0) << full->model().unit(u).layout.name();
  }
}

// GPU ranks need one GPU each: a rank without one stops, and so do the others.
TEST(ZeroTest, GpuRanksWithoutAGpuAreRefused) {
  if (World().world_size() == 1) GTEST_SKIP() << "needs several ranks (mpirun -np N)";
  if (kernels::GpuCount() >= World().world_size()) GTEST_SKIP() << "every rank has a GPU here";
  const std::string dir = SharedDir("no_gpu");
  std::string json = ZeroConfig(2, dir, 2);
  const std::string cpu = "\"backend\": \"cpu\"";
  json.replace(json.find(cpu), cpu.size(), "\"backend\": \"cuda\"");
  absl::StatusOr<Config> config = ParseConfig(json, World().world_size());
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr, &World());
  ASSERT_FALSE(trainer.ok());
  EXPECT_TRUE(trainer.status().message().find("has no GPU") != absl::string_view::npos ||
              trainer.status().message().find("another rank failed") != absl::string_view::npos)
      << trainer.status();
}

// Ranks that parsed different configs stop at start with a clear error, on every rank.
TEST(ZeroTest, DifferentConfigsOnRanksAreRefused) {
  if (World().world_size() == 1) GTEST_SKIP() << "needs several ranks (mpirun -np N)";
  const std::string dir = SharedDir("mismatch");
  std::string json = ZeroConfig(2, dir, 0);
  if (World().rank() == 1) json.replace(json.find("\"seed\": 5"), 9, "\"seed\": 6");
  absl::StatusOr<Config> config = ParseConfig(json, World().world_size());
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr, &World());
  ASSERT_FALSE(trainer.ok());
  EXPECT_NE(trainer.status().message().find("config differs between ranks"),
            absl::string_view::npos)
      << trainer.status();
}

}  // namespace
}  // namespace spillway
