// Compact optimizer state (optimizer.params.state_dtype / master_dtype, CPU tier): on the tiny
// example (examples/tiny/config.json, shortened to kSteps steps) each format's final validation
// loss stays within its margin of full fp32 state, with the state bytes it promises; bf16 and
// 8-bit moments resume bit for bit (they round-trip through the checkpoint's fp32 exactly).
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_replace.h"
#include "engine/config/config.h"
#include "engine/train/compact_adamw.h"
#include "engine/train/trainer.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using Dtype = OptimizerConfig::StateDtype;
using testing_util::ExpectResumesLike;
using testing_util::FreshDir;
using testing_util::MakeTrainer;
using testing_util::SmallConfig;

constexpr int64_t kSteps = 150;

struct Variant {
  std::string name;
  Dtype dtype;
  bool bf16_master;
  double max_rel_loss_gap;     // |loss - fp32 loss| / fp32 loss
  double max_bytes_per_param;  // optimizer state on the host, gradient copy excluded
};

Config TinyConfig(const Variant& v) {
  const char* source = std::getenv("SPILLWAY_SOURCE_DIR");
  EXPECT_NE(source, nullptr) << "SPILLWAY_SOURCE_DIR is set by ctest";
  absl::StatusOr<Config> config = LoadConfig(std::string(source) + "/examples/tiny/config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  const std::string dir = FreshDir("compact_" + v.name);
  config->checkpoint.dir = "";
  config->log.metrics_path = "";
  config->trainer.steps = kSteps;
  config->trainer.eval_interval = 0;
  config->scheduler.total_num_steps = kSteps;
  config->zero.offload_optimizer = true;
  config->optimizer.state_dtype = v.dtype;
  config->optimizer.bf16_master = v.bf16_master;
  return *config;
}

double FinalValLoss(const Variant& v, size_t* state_bytes, size_t* params) {
  auto trainer = Trainer::Create(TinyConfig(v), nullptr);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_TRUE((*trainer)->Train().ok());
  if (auto* compact = dynamic_cast<CompactAdamW*>((*trainer)->external_state())) {
    *state_bytes = compact->bytes();
  }
  *params = (*trainer)->model().param_count();
  return (*trainer)->Evaluate().value();
}

class CompactStateTest : public ::testing::TestWithParam<Variant> {};

TEST_P(CompactStateTest, TinyExampleConvergesLikeFp32State) {
  static const double fp32_loss = [] {
    size_t bytes = 0, params = 0;
    return FinalValLoss({"fp32", Dtype::kFp32, false, 0, 12}, &bytes, &params);
  }();
  size_t bytes = 0, params = 0;
  const double loss = FinalValLoss(GetParam(), &bytes, &params);
  std::printf("%s: final validation loss %.4f (fp32 state %.4f, gap %.2f%%), %.2f bytes/param\n",
              GetParam().name.c_str(), loss, fp32_loss, 100 * std::abs(loss / fp32_loss - 1),
              static_cast<double>(bytes) / params);
  EXPECT_LT(std::abs(loss - fp32_loss) / fp32_loss, GetParam().max_rel_loss_gap);
  EXPECT_GT(bytes, 0u);
  EXPECT_LE(static_cast<double>(bytes) / params, GetParam().max_bytes_per_param);
}

INSTANTIATE_TEST_SUITE_P(Formats, CompactStateTest,
                         ::testing::Values(Variant{"bf16_moments", Dtype::kBf16, false, 0.02, 8.1},
                                           Variant{"int8_moments", Dtype::kInt8, false, 0.03, 6.2},
                                           Variant{"bf16_master", Dtype::kFp32, true, 0.02, 12.1}),
                         [](const auto& info) { return info.param.name; });

std::string WithCompact(std::string json, const std::string& dtype) {
  json.insert(json.find('{') + 1,
              R"("zero_optimization": {"offload_optimizer": {"device": "cpu"}},)");
  const std::string at = R"("weight_decay": 0.1)";
  return json.insert(json.find(at) + at.size(), R"(, "state_dtype": ")" + dtype + "\"");
}

class CompactResumeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CompactResumeTest, ResumesBitwise) {
  const std::string dir_a = FreshDir("compact_full_" + GetParam());
  const std::string dir_b = FreshDir("compact_split_" + GetParam());
  auto full = MakeTrainer(WithCompact(SmallConfig(8, dir_a), GetParam()));
  ASSERT_NE(dynamic_cast<CompactAdamW*>(full->external_state()), nullptr);
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(MakeTrainer(WithCompact(SmallConfig(5, dir_b), GetParam()))->Train().ok());
  ExpectResumesLike(*full, *MakeTrainer(WithCompact(SmallConfig(8, dir_b), GetParam())),
                    dir_b + "/ckpt", 3, true);
}

INSTANTIATE_TEST_SUITE_P(Formats, CompactResumeTest, ::testing::Values("bf16", "int8"),
                         [](const auto& info) { return info.param; });

// state_dtype / master_dtype as a JSON fragment of optimizer.params.
std::string WithParams(std::string json, const std::string& params) {
  const std::string at = R"("weight_decay": 0.1)";
  return json.insert(json.find(at) + at.size(), ", " + params);
}

std::string OnNvme(std::string json, const std::string& dir) {
  std::filesystem::create_directories(dir + "/nvme");
  return json.insert(
      json.find('{') + 1,
      R"("zero_optimization": {"offload_optimizer": {"device": "nvme", "nvme_path": ")" + dir +
          R"(/nvme", "buffer_count": 3, "buffer_size": 4096}},)");
}

std::string OnCpu(std::string json) {
  return json.insert(json.find('{') + 1,
                     R"("zero_optimization": {"offload_optimizer": {"device": "cpu"}},)");
}

class CompactOnNvmeTest : public ::testing::TestWithParam<std::string> {};

// The same compact kernels over the same state: on NVMe (staged Unit by Unit through the file)
// exactly as in CPU memory, and a run on NVMe resumes bit for bit.
TEST_P(CompactOnNvmeTest, EqualsCpuTierBitwiseAndResumes) {
  std::string name;
  for (char c : GetParam()) {
    if (std::isalnum(static_cast<unsigned char>(c))) name += c;
  }
  const std::string dir = FreshDir("compact_nvme_" + name);
  auto cpu =
      MakeTrainer(WithParams(OnCpu(SmallConfig(8, FreshDir("compact_cpu_" + name))), GetParam()));
  auto nvme = MakeTrainer(WithParams(OnNvme(SmallConfig(8, dir), dir), GetParam()));
  auto* state = dynamic_cast<CompactAdamW*>(nvme->external_state());
  ASSERT_NE(state, nullptr);
  EXPECT_TRUE(state->on_nvme());
  // The planner counts the three staging slots (its 8-bit scales per Unit, not per tensor).
  size_t planned = 0;
  for (const MemoryItem& item : nvme->memory_plan().items) {
    if (item.what == "NVMe staging buffers") planned += item.bytes;
  }
  EXPECT_EQ(planned, state->staging_bytes());
  ASSERT_TRUE(cpu->Train().ok());
  absl::Status trained = nvme->Train();
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_EQ(cpu->step_losses(), nvme->step_losses());
  for (int u = 0; u < cpu->model().num_units(); ++u) {
    EXPECT_EQ(cpu->StoredParams(u).value(), nvme->StoredParams(u).value());
  }
  const std::string split = FreshDir("compact_nvme_split_" + name);
  ASSERT_TRUE(
      MakeTrainer(WithParams(OnNvme(SmallConfig(5, split), split), GetParam()))->Train().ok());
  auto resumed = MakeTrainer(WithParams(OnNvme(SmallConfig(8, split), split), GetParam()));
  absl::Status status = resumed->Resume(split + "/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(resumed->Train().ok());
  ASSERT_EQ(resumed->step_losses().size(), 3u);
  if (GetParam().find("master") != std::string::npos) return;  // the Kahan term is not saved
  for (int i = 0; i < 3; ++i) EXPECT_EQ(nvme->step_losses()[5 + i], resumed->step_losses()[i]);
}

// Parameters offloaded too (stage 3, one micro-batch per step so that the one-rank reference
// adds its gradients in the same order): compact state on NVMe with offloaded parameters trains
// bitwise like compact state in CPU memory with the parameters in the backend.
TEST_P(CompactOnNvmeTest, WithOffloadedParametersEqualsWithout) {
  std::string name;
  for (char c : GetParam()) {
    if (std::isalnum(static_cast<unsigned char>(c))) name += c;
  }
  auto one_micro_batch = [](std::string json) {
    return absl::StrReplaceAll(json, {{R"("train_batch_size": 4)", R"("train_batch_size": 2)"}});
  };
  auto reference = MakeTrainer(WithParams(
      OnCpu(one_micro_batch(SmallConfig(6, FreshDir("compact_params_ref_" + name)))), GetParam()));
  const std::string dir = FreshDir("compact_params_nvme_" + name);
  std::string json = WithParams(OnNvme(one_micro_batch(SmallConfig(6, dir)), dir), GetParam());
  json = absl::StrReplaceAll(
      json, {{R"("zero_optimization": {)", R"("zero_optimization": {"stage": 3, )"
                                           R"("offload_param": {"device": "cpu"}, )"}});
  auto offloaded = MakeTrainer(json);
  ASSERT_TRUE(reference->Train().ok());
  absl::Status trained = offloaded->Train();
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_EQ(reference->step_losses(), offloaded->step_losses());
  for (int u = 0; u < reference->model().num_units(); ++u) {
    EXPECT_TRUE(offloaded->model().unit(u).params_offloaded);
    EXPECT_EQ(reference->StoredParams(u).value(), offloaded->StoredParams(u).value());
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CompactOnNvmeTest,
                         ::testing::Values(R"("state_dtype": "bf16")", R"("state_dtype": "int8")",
                                           R"("master_dtype": "bf16")"),
                         [](const auto& info) {
                           return info.index == 0   ? "bf16_moments"
                                  : info.index == 1 ? "int8_moments"
                                                    : "bf16_master";
                         });

}  // namespace
}  // namespace spillway
