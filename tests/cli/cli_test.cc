// The spillway binary end to end: usage errors, prepare, train, resume and eval.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/file_io.h"
#include "nlohmann/json.hpp"
#include "tests/cli/run_spillway.h"

namespace spillway {
namespace {

namespace fs = std::filesystem;

using Result = testing_util::CliResult;
using testing_util::RunSpillway;

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/cli_test_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(CliTest, HelpAndUsageErrors) {
  Result help = RunSpillway("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("spillway train CONFIG"), std::string::npos) << help.output;
  EXPECT_EQ(RunSpillway("train --help").exit_code, 0);
  EXPECT_EQ(RunSpillway("").exit_code, 2);
  Result unknown = RunSpillway("fly");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("unknown command 'fly'"), std::string::npos) << unknown.output;
  Result bad_option = RunSpillway("train config.json --resum x");
  EXPECT_EQ(bad_option.exit_code, 2);
  EXPECT_NE(bad_option.output.find("--resum"), std::string::npos) << bad_option.output;
}

TEST(CliTest, MissingConfigIsNamed) {
  Result r = RunSpillway("train /nonexistent/config.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/config.json"), std::string::npos) << r.output;
}

TEST(CliTest, BadLauncherEnvironmentIsNamed) {
  ASSERT_EQ(setenv("OMPI_COMM_WORLD_RANK", "5", 1), 0);
  ASSERT_EQ(setenv("OMPI_COMM_WORLD_SIZE", "2", 1), 0);
  Result ranks = RunSpillway("train examples/tiny/config.json");
  unsetenv("OMPI_COMM_WORLD_RANK");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  EXPECT_EQ(ranks.exit_code, 1);
  EXPECT_NE(ranks.output.find("OMPI_COMM_WORLD_"), std::string::npos) << ranks.output;
}

TEST(CliTest, PrepareTrainResumeEval) {
  const std::string dir = FreshDir("e2e");
  std::string text;
  for (int i = 0; i < 400; ++i) absl::StrAppend(&text, "the quick brown fox ", i, " jumps. ");
  Write(dir + "/a.txt", text);
  Write(dir + "/b.txt", text);
  Result prep =
      RunSpillway(absl::StrCat("prepare --input ", dir, "/a.txt ", dir, "/b.txt --output ", dir,
                               "/train.tok --val-output ", dir, "/val.tok --val-fraction 0.1"));
  ASSERT_EQ(prep.exit_code, 0) << prep.output;

  const std::string config = absl::StrReplaceAll(R"({
    "train_batch_size": 2,
    "steps_per_print": 1,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.001}},
    "model": {"n_layer": 1, "n_head": 2, "d_model": 16, "seq_len": 16, "vocab_size": 256},
    "data": {"train_path": "DIR/train.tok", "val_path": "DIR/val.tok"},
    "trainer": {"steps": STEPS, "eval_interval": 2, "eval_batches": 2},
    "checkpoint": {"dir": "DIR/ckpt"},
    "log": {"metrics_path": "DIR/metrics.jsonl"}
  })",
                                                 {{"DIR", dir}});
  Write(dir + "/short.json", absl::StrReplaceAll(config, {{"STEPS", "3"}}));
  Write(dir + "/long.json", absl::StrReplaceAll(config, {{"STEPS", "5"}}));

  Result train = RunSpillway(absl::StrCat("train ", dir, "/short.json"));
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("step 3/3"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("tok/s"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("val loss"), std::string::npos) << train.output;
  EXPECT_TRUE(fs::exists(dir + "/ckpt/step_00000003/meta.json"));

  Result resume = RunSpillway(absl::StrCat("train ", dir, "/long.json --resume ", dir, "/ckpt"));
  ASSERT_EQ(resume.exit_code, 0) << resume.output;
  EXPECT_NE(resume.output.find("resumed"), std::string::npos) << resume.output;
  EXPECT_NE(resume.output.find("step 5/5"), std::string::npos) << resume.output;

  Result eval = RunSpillway(absl::StrCat("eval ", dir, "/long.json --checkpoint ", dir, "/ckpt"));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(eval.output.find("val loss"), std::string::npos) << eval.output;

  Result exported = RunSpillway(absl::StrCat("export ", dir, "/long.json --checkpoint ", dir,
                                             "/ckpt --output ", dir, "/model.safetensors"));
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_NE(exported.output.find("exported step 5"), std::string::npos) << exported.output;
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));

  Result missing =
      RunSpillway(absl::StrCat("train ", dir, "/long.json --resume ", dir, "/nothing"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find(dir + "/nothing"), std::string::npos) << missing.output;
}

TEST(CliTest, PrepareErrorsNameThePath) {
  Result r = RunSpillway("prepare --input /nonexistent.txt --output /tmp/x.tok");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent.txt"), std::string::npos) << r.output;
  EXPECT_EQ(RunSpillway("prepare --output /tmp/x.tok").exit_code, 2);
}

// The last "loss" of each step in a metrics log (a resumed run appends to it).
std::map<int64_t, double> StepLosses(const std::string& path) {
  std::map<int64_t, double> losses;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("loss")) losses[j["step"].get<int64_t>()] = j["loss"];
  }
  return losses;
}

// A run with the optimizer state on NVMe, killed (SIGKILL) mid-training, resumes from its last
// checkpoint and ends exactly where an uninterrupted run does; the killed process's stale state
// file does not get in the way.
TEST(CliTest, KilledNvmeRunResumesFromItsLastCheckpoint) {
  const std::string dir = FreshDir("nvme_kill");
  fs::create_directories(dir + "/nvme");
  const std::string config = absl::StrReplaceAll(R"({
    "train_batch_size": 4, "steps_per_print": 1,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.003, "weight_decay": 0.1}},
    "zero_optimization": {"offload_optimizer": {"device": "nvme", "nvme_path": "DIR/nvme",
                                                "buffer_count": 3, "buffer_size": 8192}},
    "model": {"n_layer": 2, "n_head": 2, "d_model": 32, "seq_len": 16, "vocab_size": 256},
    "data": {"synthetic": {"seed": 3, "train_tokens": 20000}},
    "trainer": {"steps": 120, "seed": 5},
    "checkpoint": {"dir": "DIR/RUN/ckpt", "interval": 3, "keep_last": 2},
    "log": {"metrics_path": "DIR/RUN/metrics.jsonl"}
  })",
                                                 {{"DIR", dir}});
  Write(dir + "/full.json", absl::StrReplaceAll(config, {{"RUN", "full"}}));
  Write(dir + "/killed.json", absl::StrReplaceAll(config, {{"RUN", "killed"}}));
  Result full = RunSpillway(absl::StrCat("train ", dir, "/full.json"));
  ASSERT_EQ(full.exit_code, 0) << full.output;

  const char* bin = std::getenv("SPILLWAY_BIN");
  ASSERT_NE(bin, nullptr);
  const std::string log = dir + "/killed.log";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen(log.c_str(), "w", stdout);
    std::freopen(log.c_str(), "a", stderr);
    const std::string cfg = dir + "/killed.json";
    execl(bin, bin, "train", cfg.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string first_checkpoint = dir + "/killed/ckpt/step_00000006/meta.json";
  for (int i = 0; i < 6000 && !fs::exists(first_checkpoint); ++i) usleep(10'000);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it was killed; make it longer";
  ASSERT_TRUE(fs::exists(first_checkpoint));

  Result resumed =
      RunSpillway(absl::StrCat("train ", dir, "/killed.json --resume ", dir, "/killed/ckpt"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed"), std::string::npos) << resumed.output;
  const std::map<int64_t, double> want = StepLosses(dir + "/full/metrics.jsonl");
  const std::map<int64_t, double> got = StepLosses(dir + "/killed/metrics.jsonl");
  ASSERT_EQ(want.size(), 120u);
  ASSERT_EQ(got.size(), 120u);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace spillway
