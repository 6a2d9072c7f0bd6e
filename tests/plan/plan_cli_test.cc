// `spillway plan` end to end, and `spillway train` refusing a config that does not fit before
// it allocates anything (the hardware set through SPILLWAY_PLAN_HARDWARE).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_replace.h"
#include "core/file_io.h"
#include "tests/cli/run_spillway.h"

namespace spillway {
namespace {

using testing_util::CliResult;
using testing_util::RunSpillway;

constexpr char kTiny[] = "examples/tiny/config.json";

class PlanCliTest : public ::testing::Test {
 protected:
  void TearDown() override { unsetenv("SPILLWAY_PLAN_HARDWARE"); }
  static void SetHardware(const char* spec) { setenv("SPILLWAY_PLAN_HARDWARE", spec, 1); }
  // The tiny example on the CUDA backend (planning needs no GPU).
  static std::string CudaTiny() {
    absl::StatusOr<std::string> text = ReadFileToString(kTiny);
    EXPECT_TRUE(text.ok()) << text.status();
    const std::string path = ::testing::TempDir() + "/plan_cli_cuda_tiny.json";
    std::ofstream(path) << absl::StrReplaceAll(
        *text, {{"\"trainer\": {", "\"trainer\": {\"backend\": \"cuda\", "}});
    return path;
  }
};

TEST_F(PlanCliTest, TinyFitsThisMachine) {
  const CliResult r = RunSpillway(absl::StrCat("plan ", kTiny));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"parameters", "gradients", "Adam m and v", "activations per micro-batch",
                        "cpu (all)", "verdict: fits"}) {
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  }
}

TEST_F(PlanCliTest, DoesNotFitNamesTheTierAndBytes) {
  SetHardware("cpu=1MiB");
  const CliResult r = RunSpillway(absl::StrCat("plan ", kTiny));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("verdict: does not fit"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cpu (all) needs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("has 1.0 MiB (1048576 bytes)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("overridden by SPILLWAY_PLAN_HARDWARE: cpu"), std::string::npos);
}

TEST_F(PlanCliTest, AutoChoosesTheOptimizerOffload) {
  // The tiny model needs 1169346560 bytes of GPU memory in place (with the runtime reserve)
  // and 1162606592 with the optimizer offloaded.
  SetHardware("gpu=1165000000");
  const CliResult r = RunSpillway(absl::StrCat("plan ", CudaTiny(),
                                               " --offload-optimizer auto --offload-param auto "
                                               "--nvme-path ",
                                               ::testing::TempDir()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("gpu needs 1.09 GiB (1169346560 bytes)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("chosen placement: offload_optimizer \"cpu\", offload_param \"none\""),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("gradient copy"), std::string::npos) << r.output;
}

TEST_F(PlanCliTest, SeveralRanks) {
  const CliResult r = RunSpillway("plan examples/tiny-zero/config.json --world 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(2 ranks, ZeRO stage 1, 2 per node)"), std::string::npos) << r.output;
}

TEST_F(PlanCliTest, TrainRefusesBeforeAllocating) {
  SetHardware("cpu=1MiB");
  const CliResult r = RunSpillway(absl::StrCat("train ", kTiny));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("spillway: not enough memory for this config"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("cpu (all) needs 91.1 MiB"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("model:"), std::string::npos) << "nothing built: " << r.output;
}

// The start-up report's memory lines are the planner's numbers, as `spillway plan` prints them.
TEST_F(PlanCliTest, TrainStartupReportsThePlan) {
  const std::string config = ::testing::TempDir() + "/plan_cli_startup.json";
  std::ofstream(config) << R"({
    "train_batch_size": 4, "train_micro_batch_size_per_gpu": 4,
    "activation_checkpointing": {"enabled": true},
    "model": {"type": "gpt2", "n_layer": 2, "n_head": 2, "d_model": 32, "seq_len": 32,
              "vocab_size": 256},
    "data": {"synthetic": {"seed": 1, "train_tokens": 20000, "val_tokens": 4000}},
    "trainer": {"steps": 1, "eval_interval": 0}
  })";
  const CliResult plan = RunSpillway("plan " + config);
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  const CliResult train = RunSpillway("train " + config);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  for (const char* s : {"parameters                   cpu            135.5 KiB",
                        "activations per micro-batch of 4: 597.5 KiB with checkpointing, "
                        "840.5 KiB without"}) {
    EXPECT_NE(plan.output.find(s), std::string::npos) << s << "\n" << plan.output;
  }
  EXPECT_NE(train.output.find("memory (planned): parameters 135.5 KiB cpu, gradients 135.5 KiB "
                              "cpu, optimizer state 271.0 KiB cpu, activations per micro-batch "
                              "of 4: 597.5 KiB cpu with activation checkpointing on (840.5 KiB "
                              "with it off)"),
            std::string::npos)
      << train.output;
  EXPECT_NE(train.output.find("memory totals: cpu"), std::string::npos) << train.output;
}

TEST_F(PlanCliTest, UsageAndBadValues) {
  EXPECT_EQ(RunSpillway("plan").exit_code, 2);
  EXPECT_EQ(RunSpillway("plan --help").exit_code, 0);
  const CliResult device = RunSpillway(absl::StrCat("plan ", kTiny, " --offload-param disk"));
  EXPECT_EQ(device.exit_code, 1);
  EXPECT_NE(device.output.find("--offload-param: device \"disk\""), std::string::npos)
      << device.output;
  const CliResult world = RunSpillway(absl::StrCat("plan ", kTiny, " --world 0"));
  EXPECT_EQ(world.exit_code, 1);
  EXPECT_NE(world.output.find("--world"), std::string::npos) << world.output;
  SetHardware("gpu=lots");
  const CliResult env = RunSpillway(absl::StrCat("plan ", kTiny));
  EXPECT_EQ(env.exit_code, 1);
  EXPECT_NE(env.output.find("SPILLWAY_PLAN_HARDWARE: \"gpu=lots\""), std::string::npos)
      << env.output;
}

}  // namespace
}  // namespace spillway
