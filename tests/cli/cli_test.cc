// The spillway binary end to end: usage errors, prepare, train, resume and eval.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/file_io.h"
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

}  // namespace
}  // namespace spillway
