// The training loop: bitwise resume, refused checkpoints, eval purity, the metrics log.
#include "engine/train/trainer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/file_io.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

namespace fs = std::filesystem;
using testing_util::FreshDir;
using testing_util::MakeTrainer;
using testing_util::SmallConfig;

TEST(TrainerTest, ResumedRunEqualsUninterruptedRunBitwise) {
  const std::string dir_a = FreshDir("uninterrupted");
  const std::string dir_b = FreshDir("resumed");
  auto full = MakeTrainer(SmallConfig(10, dir_a));
  ASSERT_TRUE(full->Train().ok());

  auto first = MakeTrainer(SmallConfig(6, dir_b));
  ASSERT_TRUE(first->Train().ok());
  auto second = MakeTrainer(SmallConfig(10, dir_b));
  ASSERT_TRUE(second->Resume(dir_b + "/ckpt").ok());
  EXPECT_EQ(second->step(), 6);
  ASSERT_TRUE(second->Train().ok());

  ASSERT_EQ(full->step_losses().size(), 10u);
  ASSERT_EQ(second->step_losses().size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(full->step_losses()[6 + i], second->step_losses()[i]) << "step " << 7 + i;
  }
  testing_util::ExpectSameState(full->model(), second->model());
}

TEST(TrainerTest, CorruptedCheckpointIsRefused) {
  const std::string dir = FreshDir("corrupt");
  auto trainer = MakeTrainer(SmallConfig(2, dir));
  ASSERT_TRUE(trainer->Train().ok());
  std::string rank_file;
  for (const auto& e : fs::recursive_directory_iterator(dir + "/ckpt")) {
    if (e.path().extension() == ".bin") rank_file = e.path();
  }
  ASSERT_FALSE(rank_file.empty());
  {
    std::fstream f(rank_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-100, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-100, std::ios::end);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  auto fresh = MakeTrainer(SmallConfig(4, dir));
  absl::Status status = fresh->Resume(dir + "/ckpt");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("corrupt"), absl::string_view::npos) << status;

  fs::resize_file(rank_file, fs::file_size(rank_file) / 2);
  status = MakeTrainer(SmallConfig(4, dir))->Resume(dir + "/ckpt");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("truncated"), absl::string_view::npos) << status;
}

TEST(TrainerTest, CheckpointOfAnotherModelIsRefused) {
  const std::string dir = FreshDir("other_model");
  ASSERT_TRUE(MakeTrainer(SmallConfig(1, dir))->Train().ok());
  std::string other =
      absl::StrReplaceAll(SmallConfig(2, dir), {{"\"d_model\": 32", "\"d_model\": 48"}});
  absl::Status status = MakeTrainer(other)->Resume(dir + "/ckpt");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("different model"), absl::string_view::npos) << status;
}

// Evaluation sees the same batches every time and does not disturb training.
TEST(TrainerTest, EvaluationIsRepeatableAndDoesNotChangeTraining) {
  const std::string dir = FreshDir("eval");
  std::string no_eval = absl::StrReplaceAll(SmallConfig(5, FreshDir("no_eval")),
                                            {{"\"eval_interval\": 3", "\"eval_interval\": 0"}});
  auto with = MakeTrainer(SmallConfig(5, dir));
  auto without = MakeTrainer(no_eval);
  const double before = with->Evaluate().value();
  EXPECT_EQ(before, with->Evaluate().value());
  ASSERT_TRUE(with->Train().ok());
  ASSERT_TRUE(without->Train().ok());
  EXPECT_EQ(with->step_losses(), without->step_losses());
  EXPECT_LT(with->Evaluate().value(), before);
}

TEST(TrainerTest, MetricsLogHasOneLinePerReportAndEval) {
  const std::string dir = FreshDir("metrics");
  ASSERT_TRUE(MakeTrainer(SmallConfig(6, dir))->Train().ok());
  std::string text = ReadFileToString(dir + "/metrics.jsonl").value();
  int steps = 0, evals = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json record = nlohmann::json::parse(line);
    if (record.contains("eval_loss")) ++evals;
    if (record.contains("tokens_per_s")) ++steps;
  }
  EXPECT_EQ(steps, 4);  // steps 1, 2, 4, 6
  EXPECT_EQ(evals, 2);  // steps 3, 6
}

TEST(TrainerTest, FreshRunRefusesAnotherRunsCheckpoints) {
  const std::string dir = FreshDir("occupied");
  ASSERT_TRUE(MakeTrainer(SmallConfig(2, dir))->Train().ok());
  absl::Status status = MakeTrainer(SmallConfig(4, dir))->Train();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("--resume"), absl::string_view::npos) << status;
}

TEST(TrainerTest, UnwritableCheckpointDirIsNamedBeforeTraining) {
  const std::string dir = FreshDir("unwritable");
  ASSERT_TRUE(WriteFileAtomic(dir + "/file", absl::string_view("x")).ok());
  std::string json =
      absl::StrReplaceAll(SmallConfig(2, dir), {{dir + "/ckpt", dir + "/file/ckpt"}});
  auto trainer = MakeTrainer(json);
  absl::Status status = trainer->Train();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("checkpoint.dir"), absl::string_view::npos) << status;
  EXPECT_EQ(trainer->step(), 0);
}

TEST(TrainerTest, VocabularyLargerThanModelIsRefused) {
  const std::string dir = FreshDir("vocab");
  std::string json =
      absl::StrReplaceAll(SmallConfig(1, dir), {{"\"vocab_size\": 256", "\"vocab_size\": 100"}});
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(ParseConfig(json).value(), nullptr);
  EXPECT_FALSE(trainer.ok());
  EXPECT_NE(trainer.status().message().find("model.vocab_size"), absl::string_view::npos)
      << trainer.status();
}

}  // namespace
}  // namespace spillway
