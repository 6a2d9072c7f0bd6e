// The optimizer state on NVMe (zero_optimization.offload_optimizer.device = "nvme") never
// changes the math: losses and parameters are bitwise equal to the CPU tier and to the
// optimizer in the backend, on both I/O engines (io_uring where the kernel allows it, and the
// pread fallback); runs resume bit for bit with the NVMe-resident moments in the checkpoint;
// a bad nvme_path is a clear error naming the key.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/plan/hardware.h"
#include "engine/plan/memory_plan.h"
#include "engine/plan/plan_config.h"
#include "engine/train/nvme_adamw.h"
#include "kernels/backend.h"
#include "partitioner/offload_split.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using testing_util::ExpectResumesLike;
using testing_util::FreshDir;
using testing_util::MakeTrainer;
using testing_util::SmallConfig;

std::string WithOffload(std::string json, const std::string& section) {
  return json.insert(json.find('{') + 1, section);
}

std::string OnCpu(const std::string& json) {
  return WithOffload(json, R"("zero_optimization": {"offload_optimizer": {"device": "cpu"}},)");
}

// Small tiles (4 KiB per array) so that every Unit streams in several tiles.
std::string OnNvme(const std::string& json, const std::string& nvme_path,
                   const std::string& engine) {
  return WithOffload(json,
                     absl::StrCat(R"("zero_optimization": {"offload_optimizer": {"device": "nvme",
                             "nvme_path": ")",
                                  nvme_path, R"(", "buffer_count": 4, "buffer_size": 4096}},
                         "aio": {"queue_depth": 8, "engine": ")",
                                  engine, R"("},)"));
}

class NvmeOffloadTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string Dir(const std::string& name) { return FreshDir(name + "_" + GetParam()); }
  std::string Nvme(const std::string& json, const std::string& dir) {
    std::filesystem::create_directories(dir + "/nvme");
    return OnNvme(json, dir + "/nvme", GetParam());
  }
};

TEST_P(NvmeOffloadTest, NvmeEqualsCpuTierAndInBackendOptimizerBitwise) {
  auto in_backend = MakeTrainer(SmallConfig(8, Dir("nvme_ref_backend")));
  auto cpu = MakeTrainer(OnCpu(SmallConfig(8, Dir("nvme_ref_cpu"))));
  const std::string dir = Dir("nvme_state");
  auto nvme = MakeTrainer(Nvme(SmallConfig(8, dir), dir));
  auto* nvme_adamw = dynamic_cast<NvmeAdamW*>(nvme->external_state());
  ASSERT_NE(nvme_adamw, nullptr);
  NvmeOptimizerState& state = nvme_adamw->state();
  EXPECT_EQ(state.num_units(), nvme->model().num_units());
  // The planner counts the tiles the state streams through.
  size_t planned = 0;
  for (const MemoryItem& item : nvme->memory_plan().items) {
    if (item.what == "NVMe staging buffers") planned += item.bytes;
  }
  EXPECT_EQ(planned, state.host_bytes());
  if (GetParam() == "pread") {
    EXPECT_EQ(state.engine().name(), "pread");
  }
  for (Trainer* t : {in_backend.get(), cpu.get(), nvme.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(in_backend->step_losses(), nvme->step_losses());
  EXPECT_EQ(cpu->step_losses(), nvme->step_losses());
  for (int u = 0; u < nvme->model().num_units(); ++u) {
    const std::string name = nvme->model().unit(u).layout.name();
    EXPECT_EQ(in_backend->StoredParams(u).value(), nvme->StoredParams(u).value()) << name;
    // The moments on NVMe are the CPU tier's, and nothing of them stays in host memory.
    const UnitState& on_cpu = cpu->model().unit(u);
    const UnitState& on_nvme = nvme->model().unit(u);
    EXPECT_TRUE(on_nvme.optimizer_state_external());
    EXPECT_EQ(on_nvme.exp_avg.bytes() + on_nvme.exp_avg_sq.bytes() + on_nvme.offload_master.bytes(),
              0u);
    std::vector<float> m(state.numel(u)), v(m.size()), master(m.size());
    ASSERT_EQ(m.size() * sizeof(float), on_cpu.exp_avg.bytes());
    ASSERT_TRUE(state.ReadArray(u, NvmeOptimizerState::kExpAvg, m.data()).ok());
    ASSERT_TRUE(state.ReadArray(u, NvmeOptimizerState::kExpAvgSq, v.data()).ok());
    ASSERT_TRUE(state.ReadArray(u, NvmeOptimizerState::kMaster, master.data()).ok());
    EXPECT_EQ(std::memcmp(m.data(), on_cpu.exp_avg.data(), on_cpu.exp_avg.bytes()), 0) << name;
    EXPECT_EQ(std::memcmp(v.data(), on_cpu.exp_avg_sq.data(), on_cpu.exp_avg_sq.bytes()), 0)
        << name;
    EXPECT_EQ(
        std::memcmp(master.data(), on_cpu.offload_master.data(), on_cpu.offload_master.bytes()), 0)
        << name;
  }
  EXPECT_NE(nvme_adamw->Describe().find(state.file().path()), std::string::npos);
}

TEST_P(NvmeOffloadTest, NvmeRunResumesBitwise) {
  const std::string dir_a = Dir("nvme_full");
  const std::string dir_b = Dir("nvme_split");
  auto full = MakeTrainer(Nvme(SmallConfig(8, dir_a), dir_a));
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(MakeTrainer(Nvme(SmallConfig(5, dir_b), dir_b))->Train().ok());
  ExpectResumesLike(*full, *MakeTrainer(Nvme(SmallConfig(8, dir_b), dir_b)), dir_b + "/ckpt", 3,
                    true);
}

// A checkpoint written with the state on NVMe resumes on the CPU tier and the other way round:
// the checkpoint holds the same moments whichever tier they lived in.
TEST_P(NvmeOffloadTest, CheckpointsMoveBetweenCpuAndNvmeTiers) {
  const std::string dir_a = Dir("tier_full");
  const std::string dir_b = Dir("tier_split");
  auto full = MakeTrainer(OnCpu(SmallConfig(8, dir_a)));
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(MakeTrainer(Nvme(SmallConfig(5, dir_b), dir_b))->Train().ok());
  ExpectResumesLike(*full, *MakeTrainer(OnCpu(SmallConfig(8, dir_b))), dir_b + "/ckpt", 3, false);
}

// Parameters offloaded to CPU memory (stage 3) with the optimizer state on NVMe: the updated
// parameters come back from the file's tiles into the parameter shards; bitwise the same run as
// with the state in CPU memory, moments included.
TEST_P(NvmeOffloadTest, OffloadedParametersWithStateOnNvmeEqualCpuTierBitwise) {
  auto zero = [](const std::string& optimizer) {
    return absl::StrCat(R"("zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"},)",
                        R"( "offload_optimizer": )", optimizer, "},");
  };
  auto cpu = MakeTrainer(
      WithOffload(SmallConfig(8, Dir("params_cpu_state")), zero(R"({"device": "cpu"})")));
  const std::string dir = Dir("params_nvme_state");
  std::filesystem::create_directories(dir + "/nvme");
  const std::string nvme_json = WithOffload(
      SmallConfig(8, dir),
      absl::StrCat(zero(absl::StrCat(R"({"device": "nvme", "nvme_path": ")", dir,
                                     R"(/nvme", "buffer_count": 4, "buffer_size": 4096})")),
                   R"("aio": {"engine": ")", GetParam(), R"("},)"));
  auto nvme = MakeTrainer(nvme_json);
  auto* nvme_adamw = dynamic_cast<NvmeAdamW*>(nvme->external_state());
  ASSERT_NE(nvme_adamw, nullptr);
  for (Trainer* t : {cpu.get(), nvme.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(cpu->step_losses(), nvme->step_losses());
  for (int u = 0; u < nvme->model().num_units(); ++u) {
    const UnitState& on_cpu = cpu->model().unit(u);
    const UnitState& on_nvme = nvme->model().unit(u);
    EXPECT_TRUE(on_nvme.params_offloaded && on_nvme.optimizer_state_external());
    EXPECT_EQ(cpu->StoredParams(u).value(), nvme->StoredParams(u).value()) << u;
    std::vector<float> m(nvme_adamw->state().numel(u));
    ASSERT_EQ(m.size() * sizeof(float), on_cpu.exp_avg.bytes());
    ASSERT_TRUE(nvme_adamw->state().ReadArray(u, NvmeOptimizerState::kExpAvg, m.data()).ok());
    EXPECT_EQ(std::memcmp(m.data(), on_cpu.exp_avg.data(), on_cpu.exp_avg.bytes()), 0) << u;
  }
}

// Parameters on NVMe (offload_param "nvme"): the parameter shards are the optimizer's master
// in its file, read back for every gather; no parameter Buffer is allocated. Bitwise the same
// run as with them in CPU memory (two micro-batches per step, evaluation, fp32 and 8-bit
// moments, and 8-bit with nvme_ratio 0.5, where the first Units' master stays in CPU memory);
// checkpoints hold them, so a run resumes bit for bit, also from a checkpoint written with the
// parameters in CPU memory.
TEST_P(NvmeOffloadTest, ParametersOnNvmeEqualParametersInCpuMemoryBitwise) {
  // `state`: "fp32", "int8", or "split" (int8 with nvme_ratio 0.5).
  auto config = [&](const std::string& params, const std::string& dir, int steps,
                    const std::string& state) {
    std::filesystem::create_directories(dir + "/nvme");
    std::string json = WithOffload(
        SmallConfig(steps, dir),
        absl::StrCat(R"("zero_optimization": {"stage": 3, "offload_param": {"device": ")", params,
                     R"("}, "offload_optimizer": {"device": "nvme", "nvme_path": ")", dir,
                     R"(/nvme", "buffer_count": 4, "buffer_size": 4096)",
                     state == "split" ? R"(, "nvme_ratio": 0.5)" : "", "}},",
                     R"("aio": {"engine": ")", GetParam(), R"("},)"));
    const std::string at = R"("weight_decay": 0.1)";
    if (state != "fp32") json.insert(json.find(at) + at.size(), R"(, "state_dtype": "int8")");
    return json;
  };
  std::vector<double> int8_losses;
  for (const std::string state : {"fp32", "int8", "split"}) {
    SCOPED_TRACE(state);
    auto cpu = MakeTrainer(config("cpu", Dir("params_cpu_" + state), 8, state));
    auto nvme = MakeTrainer(config("nvme", Dir("params_nvme_" + state), 8, state));
    for (Trainer* t : {cpu.get(), nvme.get()}) {
      absl::Status trained = t->Train();
      ASSERT_TRUE(trained.ok()) << trained;
    }
    EXPECT_EQ(cpu->step_losses(), nvme->step_losses());
    // Where the 8-bit state lives changes nothing.
    if (state == "int8") int8_losses = nvme->step_losses();
    if (state == "split") {
      EXPECT_EQ(nvme->step_losses(), int8_losses);
    }
    for (int u = 0; u < nvme->model().num_units(); ++u) {
      const UnitState& unit = nvme->model().unit(u);
      EXPECT_TRUE(unit.params_in_master);
      EXPECT_EQ(unit.params.bytes(), 0u);
      EXPECT_EQ(cpu->StoredParams(u).value(), nvme->StoredParams(u).value()) << u;
      // nvme_ratio 0.5: the first Unit's master in memory, the last Unit's in the file.
      const NvmeShardReader::Location at = nvme->external_state()->MasterLocation(u);
      if (state == "split" && (u == 0 || u + 1 == nvme->model().num_units())) {
        EXPECT_EQ(at.memory != nullptr, u == 0) << u;
        EXPECT_EQ(at.file != nullptr, u != 0) << u;
      }
    }
  }
  const std::string full_dir = Dir("params_nvme_full"), split_dir = Dir("params_nvme_split");
  auto full = MakeTrainer(config("nvme", full_dir, 8, "fp32"));
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(MakeTrainer(config("nvme", split_dir, 5, "fp32"))->Train().ok());
  ExpectResumesLike(*full, *MakeTrainer(config("nvme", split_dir, 8, "fp32")), split_dir + "/ckpt",
                    3, true);
  const std::string moved_dir = Dir("params_moved");
  ASSERT_TRUE(MakeTrainer(config("cpu", moved_dir, 5, "fp32"))->Train().ok());
  ExpectResumesLike(*full, *MakeTrainer(config("nvme", moved_dir, 8, "fp32")), moved_dir + "/ckpt",
                    3, true);
  // All three tiers (offload_optimizer.ratio 0.4: the first Units wholly in the backend;
  // nvme_ratio 0.3: the middle Units' 8-bit state in CPU memory, the last Units' on NVMe, with
  // the parameters there too): bitwise the same run as the same split with the parameters and
  // state in CPU memory.
  auto tiers = [&](const std::string& params, const std::string& dir) {
    return absl::StrReplaceAll(
        config(params, dir, 8, "int8"),
        {{R"("buffer_size": 4096)", R"("buffer_size": 4096, "ratio": 0.4, "nvme_ratio": 0.3)"}});
  };
  auto tiers_cpu = MakeTrainer(tiers("cpu", Dir("tiers_cpu")));
  auto tiers_nvme = MakeTrainer(tiers("nvme", Dir("tiers_nvme")));
  for (Trainer* t : {tiers_cpu.get(), tiers_nvme.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(tiers_cpu->step_losses(), tiers_nvme->step_losses());
  const Model& model = tiers_nvme->model();
  int in_backend = 0, in_memory = 0, on_nvme = 0;
  for (int u = 0; u < model.num_units(); ++u) {
    EXPECT_EQ(tiers_cpu->StoredParams(u).value(), tiers_nvme->StoredParams(u).value()) << u;
    const NvmeShardReader::Location at = tiers_nvme->external_state()->MasterLocation(u);
    in_backend += !model.unit(u).optimizer_offloaded();
    in_memory += model.unit(u).optimizer_offloaded() && at.memory != nullptr;
    on_nvme += model.unit(u).optimizer_offloaded() && at.file != nullptr;
  }
  EXPECT_GT(in_backend, 0);
  EXPECT_GT(in_memory, 0);
  EXPECT_GT(on_nvme, 0);
  // A run with its 8-bit state split over CPU memory and NVMe resumes bit for bit.
  const std::string split_full_dir = Dir("split_full"), split_split_dir = Dir("split_split");
  auto split_full = MakeTrainer(config("nvme", split_full_dir, 8, "split"));
  ASSERT_TRUE(split_full->Train().ok());
  ASSERT_TRUE(MakeTrainer(config("nvme", split_split_dir, 5, "split"))->Train().ok());
  ExpectResumesLike(*split_full, *MakeTrainer(config("nvme", split_split_dir, 8, "split")),
                    split_split_dir + "/ckpt", 3, true);
}

// offload_param.max_in_cpu: the parameter reader keeps shards in host memory for their next
// use (the backward takes the shards the forward read last). Four layers and a prefetch of one
// Unit, so the gathered buffers cannot hold every Unit and the backward must read again: off
// (the default), one Unit's worth and DeepSpeed's 1e9 (every Unit here) are bitwise the same
// run, with two micro-batches per step and evaluation between steps.
TEST_P(NvmeOffloadTest, ParameterCacheChangesNoBit) {
  auto config = [&](const std::string& dir, const std::string& max_in_cpu) {
    std::filesystem::create_directories(dir + "/nvme");
    std::string json = WithOffload(
        absl::StrReplaceAll(SmallConfig(6, dir), {{R"("n_layer": 2)", R"("n_layer": 4)"}}),
        absl::StrCat(R"("zero_optimization": {"stage": 3, "stage3_prefetch_bucket_size": 1,)",
                     R"("offload_param": {"device": "nvme")", max_in_cpu,
                     R"(}, "offload_optimizer": {"device": "nvme", "nvme_path": ")", dir,
                     R"(/nvme", "buffer_count": 4, "buffer_size": 4096}},)",
                     R"("aio": {"engine": ")", GetParam(), R"("},)"));
    return json;
  };
  auto off = MakeTrainer(config(Dir("cache_off"), ""));
  auto one = MakeTrainer(config(Dir("cache_one"), R"(, "max_in_cpu": 13000)"));
  auto all = MakeTrainer(config(Dir("cache_all"), R"(, "max_in_cpu": 1e9)"));
  for (Trainer* t : {off.get(), one.get(), all.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  // A layer Unit of d = 32 holds 12 * 32^2 + 13 * 32 = 12704 elements; Units 1-5 are read.
  EXPECT_EQ(off->param_reader()->cache_count(), 0);
  EXPECT_EQ(one->param_reader()->cache_count(), 1);
  EXPECT_EQ(all->param_reader()->cache_count(), all->model().num_units() - 1);
  // Every Unit is read once per step with the whole cache, where the backward re-reads without.
  const NvmeShardReader::Stats off_reads = off->param_reader()->totals();
  const NvmeShardReader::Stats one_reads = one->param_reader()->totals();
  const NvmeShardReader::Stats all_reads = all->param_reader()->totals();
  EXPECT_EQ(off_reads.cached_bytes, 0u);
  EXPECT_GT(one_reads.cached_bytes, 0u);
  EXPECT_LT(one_reads.bytes, off_reads.bytes);
  EXPECT_LT(all_reads.bytes, one_reads.bytes);
  EXPECT_EQ(all_reads.bytes + all_reads.cached_bytes, off_reads.bytes);
  for (Trainer* t : {one.get(), all.get()}) {
    EXPECT_EQ(t->step_losses(), off->step_losses());
    for (int u = 0; u < off->model().num_units(); ++u) {
      EXPECT_EQ(t->StoredParams(u).value(), off->StoredParams(u).value()) << u;
    }
  }
  // The planner counts the cache the reader allocates.
  for (Trainer* t : {off.get(), one.get(), all.get()}) {
    size_t planned = 0;
    for (const MemoryItem& item : t->memory_plan().items) {
      if (item.what.starts_with("NVMe parameter")) planned += item.bytes;
    }
    EXPECT_EQ(planned, t->param_reader()->host_bytes());
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, NvmeOffloadTest, ::testing::Values("auto", "pread"),
                         [](const auto& info) { return info.param; });

// The CUDA backend (label gpu; skipped without a GPU): gradient copies in pinned memory, state
// on NVMe, fp32 and 8-bit, exactly as the in-backend optimizer and the CPU tier.
TEST(NvmeOffloadGpuTest, CudaNvmeEqualsInBackendAndCpuTierBitwise) {
  if (kernels::GpuCount() == 0) GTEST_SKIP() << "no GPU here (this runs on the GPU machine)";
  auto config = [](const std::string& name) {
    return SmallConfig(8, FreshDir("gpu_" + name), 0, "cuda");
  };
  auto int8 = [](std::string json) {
    const std::string at = R"("weight_decay": 0.1)";
    return json.insert(json.find(at) + at.size(), R"(, "state_dtype": "int8")");
  };
  // Each NVMe run its own folder: the state file's name is per process and rank.
  const std::string dir = FreshDir("gpu_nvme_files");
  std::filesystem::create_directories(dir + "/fp32");
  std::filesystem::create_directories(dir + "/int8");
  auto in_backend = MakeTrainer(config("in_backend"));
  auto nvme = MakeTrainer(OnNvme(config("nvme"), dir + "/fp32", "auto"));
  auto int8_cpu = MakeTrainer(int8(OnCpu(config("int8_cpu"))));
  auto int8_nvme = MakeTrainer(int8(OnNvme(config("int8_nvme"), dir + "/int8", "auto")));
  for (Trainer* t : {in_backend.get(), nvme.get(), int8_cpu.get(), int8_nvme.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(in_backend->step_losses(), nvme->step_losses());
  EXPECT_EQ(int8_cpu->step_losses(), int8_nvme->step_losses());
  for (int u = 0; u < nvme->model().num_units(); ++u) {
    EXPECT_EQ(in_backend->StoredParams(u).value(), nvme->StoredParams(u).value());
    EXPECT_EQ(int8_cpu->StoredParams(u).value(), int8_nvme->StoredParams(u).value());
    EXPECT_EQ(nvme->model().unit(u).offload_grads.tier(), Tier::kPinnedHost);
  }
}

// The CUDA backend (label gpu): parameters on NVMe, read into pinned staging and copied up for
// each gather, train exactly as with them in pinned CPU memory; likewise all three tiers
// (ratio 0.4: the first Units wholly on the GPU, so Unit 0's tier is not the offload tier;
// nvme_ratio 0.3, 8-bit state).
TEST(NvmeOffloadGpuTest, CudaParametersOnNvmeEqualParametersInPinnedMemoryBitwise) {
  if (kernels::GpuCount() == 0) GTEST_SKIP() << "no GPU here (this runs on the GPU machine)";
  auto config = [](const std::string& params, const std::string& name, const std::string& split) {
    const std::string dir = FreshDir("gpu_params_" + name);
    std::filesystem::create_directories(dir + "/nvme");
    std::string json = WithOffload(
        SmallConfig(8, dir, 0, "cuda"),
        absl::StrCat(R"("zero_optimization": {"stage": 3, "offload_param": {"device": ")", params,
                     R"("}, "offload_optimizer": {"device": "nvme", "nvme_path": ")", dir,
                     R"(/nvme", "buffer_count": 4, "buffer_size": 4096)", split, "}},"));
    const std::string at = R"("weight_decay": 0.1)";
    if (!split.empty()) json.insert(json.find(at) + at.size(), R"(, "state_dtype": "int8")");
    return json;
  };
  const std::string three_tiers = R"(, "ratio": 0.4, "nvme_ratio": 0.3)";
  for (const std::string& split : {std::string(), three_tiers}) {
    SCOPED_TRACE(split.empty() ? "fp32, all offloaded" : "three tiers");
    const std::string name = split.empty() ? "" : "_tiers";
    auto pinned = MakeTrainer(config("cpu", "pinned" + name, split));
    auto nvme = MakeTrainer(config("nvme", "nvme" + name, split));
    for (Trainer* t : {pinned.get(), nvme.get()}) {
      absl::Status trained = t->Train();
      ASSERT_TRUE(trained.ok()) << trained;
    }
    EXPECT_EQ(pinned->step_losses(), nvme->step_losses());
    int in_backend = 0;
    for (int u = 0; u < nvme->model().num_units(); ++u) {
      EXPECT_EQ(pinned->StoredParams(u).value(), nvme->StoredParams(u).value()) << u;
      const UnitState& unit = nvme->model().unit(u);
      in_backend += !unit.params_offloaded;
      EXPECT_EQ(unit.grads.tier(), unit.params_offloaded ? Tier::kPinnedHost : Tier::kDevice);
    }
    EXPECT_EQ(in_backend > 0, !split.empty());
  }
}

absl::Status CreateStatus(const std::string& json) {
  absl::StatusOr<Config> config = ParseConfig(json);
  if (!config.ok()) return config.status();
  return Trainer::Create(*config, nullptr).status();
}

TEST(NvmeOffloadErrorsTest, MissingNvmePathNamesTheKeyAndThePath) {
  const std::string dir = FreshDir("nvme_missing");
  const absl::Status status =
      CreateStatus(OnNvme(SmallConfig(2, dir), dir + "/no_such_dir", "auto"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("zero_optimization.offload_optimizer.nvme_path"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find(dir + "/no_such_dir"), std::string::npos) << status;
}

TEST(NvmeOffloadErrorsTest, NvmePathThatIsAFileIsRefused) {
  const std::string dir = FreshDir("nvme_file");
  std::FILE* f = std::fopen((dir + "/file").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  const absl::Status status = CreateStatus(OnNvme(SmallConfig(2, dir), dir + "/file", "auto"));
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("not a directory"), std::string::npos) << status;
  EXPECT_NE(status.message().find("nvme_path"), std::string::npos) << status;
}

TEST(NvmeOffloadErrorsTest, UnwritableNvmePathIsRefused) {
  // /proc is a directory nobody can create files in, root included.
  const std::string dir = FreshDir("nvme_unwritable");
  const absl::Status status = CreateStatus(OnNvme(SmallConfig(2, dir), "/proc", "auto"));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_NE(status.message().find("zero_optimization.offload_optimizer.nvme_path"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find("not writable"), std::string::npos) << status;
}

// The host memory (pageable and pinned) the planner gives `in`; 0 and a failure if it refuses.
size_t PlannedHostBytes(const PlanInput& in) {
  absl::StatusOr<MemoryPlan> plan = PlanMemory(in);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? plan->Bytes(Tier::kHost) + plan->Bytes(Tier::kPinnedHost) : size_t{0};
}

// offload_optimizer.device "auto": with room for everything, the optimizer stays in the backend;
// with host memory (SPILLWAY_PLAN_HARDWARE) too small for anything but NVMe-resident state, the
// trainer picks "nvme", and either way it trains exactly as the explicit placement does.
TEST(NvmeOffloadAutoTest, AutoPicksTheCheapestPlacementThatFitsAndTrainsLikeIt) {
  const std::string dir = FreshDir("nvme_auto");
  std::filesystem::create_directories(dir + "/nvme");
  const std::string auto_json = WithOffload(
      SmallConfig(8, dir + "/auto"),
      absl::StrCat(
          R"("zero_optimization": {"offload_optimizer": {"device": "auto", "nvme_path": ")", dir,
          R"(/nvme", "buffer_count": 4, "buffer_size": 4096}},)"));
  // The host bytes each placement needs, from the planner.
  absl::StatusOr<Config> config = ParseConfig(auto_json);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<PlanInput> input = PlanInputFromConfig(*config, 1, 1);
  ASSERT_TRUE(input.ok()) << input.status();
  auto host_bytes = [&](Placement placement) {
    PlanInput in = *input;
    in.offload_optimizer = placement;
    return PlannedHostBytes(in);
  };
  const size_t none = host_bytes(Placement::kNone), nvme = host_bytes(Placement::kNvme);
  ASSERT_LT(nvme, none);
  ASSERT_LT(nvme, host_bytes(Placement::kCpu));

  auto in_backend = MakeTrainer(SmallConfig(8, dir + "/ref_backend"));
  auto chose_none = MakeTrainer(auto_json);
  EXPECT_EQ(chose_none->external_state(), nullptr);
  EXPECT_FALSE(chose_none->model().unit(0).optimizer_offloaded());

  const std::string small_host = absl::StrCat("cpu=", (none + nvme) / 2);
  setenv(kHardwareOverrideEnv, small_host.c_str(), 1);
  auto chose_nvme = MakeTrainer(absl::StrReplaceAll(auto_json, {{"/auto", "/auto_nvme"}}));
  unsetenv(kHardwareOverrideEnv);
  ASSERT_NE(chose_nvme, nullptr);
  EXPECT_NE(dynamic_cast<NvmeAdamW*>(chose_nvme->external_state()), nullptr);

  for (Trainer* t : {in_backend.get(), chose_none.get(), chose_nvme.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(in_backend->step_losses(), chose_none->step_losses());
  EXPECT_EQ(in_backend->step_losses(), chose_nvme->step_losses());
}

// offload_param "auto" beside an "auto" optimizer (stage 3): with room for everything nothing
// moves; with host memory that holds the parameter and gradient shards (8 bytes per parameter)
// but not also a gradient copy (on the CPU backend the compute tier is host memory too) the
// trainer moves the optimizer state to NVMe and the parameters to CPU memory, and trains
// exactly as that explicit placement does.
TEST(NvmeOffloadAutoTest, AutoOffloadsTheParametersWhenOnlyThatFits) {
  const std::string dir = FreshDir("nvme_auto_params");
  std::filesystem::create_directories(dir + "/nvme");
  auto zero = [&](const std::string& optimizer, const std::string& params) {
    return absl::StrCat(R"("zero_optimization": {"stage": 3, "stage3_prefetch_bucket_size": 1,)",
                        R"( "offload_optimizer": {"device": ")", optimizer, R"(", "nvme_path": ")",
                        dir, R"(/nvme", "buffer_count": 4, "buffer_size": 4096},)",
                        R"( "offload_param": {"device": ")", params, R"("}},)");
  };
  // 12 layers, one Unit prefetched: the working buffers are small beside the model's state.
  auto deep = [](const std::string& json) {
    return absl::StrReplaceAll(json, {{R"("n_layer": 2)", R"("n_layer": 12)"}});
  };
  const std::string auto_json =
      WithOffload(deep(SmallConfig(4, dir + "/auto")), zero("auto", "auto"));
  absl::StatusOr<Config> config = ParseConfig(auto_json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->zero.offload_param_auto);
  absl::StatusOr<PlanInput> input = PlanInputFromConfig(*config, 1, 1);
  ASSERT_TRUE(input.ok()) << input.status();
  auto host_bytes = [&](Placement optimizer, Placement params) {
    PlanInput in = *input;
    in.offload_optimizer = optimizer;
    in.offload_param = params;
    return PlannedHostBytes(in);
  };
  const size_t both = host_bytes(Placement::kNvme, Placement::kCpu);
  const size_t optimizer_only = host_bytes(Placement::kNvme, Placement::kNone);
  ASSERT_LT(both, optimizer_only);

  auto chose_none = MakeTrainer(auto_json);
  EXPECT_FALSE(chose_none->model().unit(0).params_offloaded);
  EXPECT_FALSE(chose_none->model().unit(0).optimizer_offloaded());

  const std::string small_host = absl::StrCat("cpu=", (both + optimizer_only) / 2);
  setenv(kHardwareOverrideEnv, small_host.c_str(), 1);
  auto chose_both = MakeTrainer(absl::StrReplaceAll(auto_json, {{"/auto", "/auto_both"}}));
  unsetenv(kHardwareOverrideEnv);
  ASSERT_NE(chose_both, nullptr);
  EXPECT_TRUE(chose_both->model().unit(0).params_offloaded);
  EXPECT_NE(dynamic_cast<NvmeAdamW*>(chose_both->external_state()), nullptr);

  auto explicit_placement =
      MakeTrainer(WithOffload(deep(SmallConfig(4, dir + "/explicit")), zero("nvme", "cpu")));
  for (Trainer* t : {chose_both.get(), explicit_placement.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(explicit_placement->step_losses(), chose_both->step_losses());
}

// offload_optimizer.ratio "auto" on NVMe: with host memory (SPILLWAY_PLAN_HARDWARE) that holds
// the state of the first half of the Units but not of one more, the trainer keeps that half in
// the backend, the rest on NVMe, and trains exactly as ratio 0.5 does.
TEST(NvmeOffloadAutoTest, RatioAutoKeepsWhatFitsInTheBackendAndTrainsLikeIt) {
  const std::string dir = FreshDir("nvme_ratio_auto");
  std::filesystem::create_directories(dir + "/nvme");
  auto zero = [&](const std::string& ratio) {
    return absl::StrCat(R"("zero_optimization": {"offload_optimizer": {"device": "nvme",)",
                        R"( "nvme_path": ")", dir, R"(/nvme", "buffer_count": 4,)",
                        R"( "buffer_size": 4096, "ratio": )", ratio, "}},");
  };
  auto deep = [](const std::string& json) {  // 8 layers: a ratio has Units to split
    return absl::StrReplaceAll(json, {{R"("n_layer": 2)", R"("n_layer": 8)"}});
  };
  const std::string auto_json = WithOffload(deep(SmallConfig(4, dir + "/auto")), zero("\"auto\""));
  absl::StatusOr<Config> config = ParseConfig(auto_json);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<PlanInput> input = PlanInputFromConfig(*config, 1, 1);
  ASSERT_TRUE(input.ok()) << input.status();
  auto host_bytes = [&](double ratio) {
    PlanInput in = *input;
    in.offload_ratio = ratio;
    in.offload_ratio_auto = false;
    return PlannedHostBytes(in);
  };
  const int half = FirstOffloadedUnit(input->unit_numel, 0.5);
  double fewer = 0.5;  // the largest ratio on the grid that offloads fewer Units than 0.5
  while (FirstOffloadedUnit(input->unit_numel, fewer) == half) fewer -= 0.05;
  ASSERT_GT(fewer, 0.0);
  ASSERT_LT(host_bytes(0.5), host_bytes(fewer));

  const std::string small_host = absl::StrCat("cpu=", (host_bytes(0.5) + host_bytes(fewer)) / 2);
  setenv(kHardwareOverrideEnv, small_host.c_str(), 1);
  auto chose = MakeTrainer(auto_json);
  unsetenv(kHardwareOverrideEnv);
  ASSERT_NE(chose, nullptr);
  auto explicit_ratio =
      MakeTrainer(WithOffload(deep(SmallConfig(4, dir + "/explicit")), zero("0.5")));
  for (int u = 0; u < chose->model().num_units(); ++u) {
    EXPECT_EQ(chose->model().unit(u).optimizer_offloaded(), u >= half) << u;
    EXPECT_EQ(explicit_ratio->model().unit(u).optimizer_offloaded(), u >= half) << u;
  }
  for (Trainer* t : {chose.get(), explicit_ratio.get()}) {
    absl::Status trained = t->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  EXPECT_EQ(explicit_ratio->step_losses(), chose->step_losses());
}

}  // namespace
}  // namespace spillway
