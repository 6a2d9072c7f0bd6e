// spillway export: the consolidated file holds exactly the trained parameters.
#include "engine/train/export.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/safetensors.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::MakeTrainer;
using testing_util::SmallConfig;

TEST(ExportTest, FileHoldsTheTrainedParameters) {
  const std::string dir = FreshDir("export");
  auto trainer = MakeTrainer(SmallConfig(3, dir));
  ASSERT_TRUE(trainer->Train().ok());
  const ModelConfig& model = trainer->model().config();
  absl::StatusOr<ExportReport> report =
      ExportCheckpoint(model, dir + "/ckpt", dir + "/model.safetensors");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->step, 3);
  EXPECT_EQ(report->parameters, trainer->model().param_count());

  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("spillway_step"), "3");
  size_t seen = 0;
  for (int u = 0; u < trainer->model().num_units(); ++u) {
    for (const TensorSpec& t : trainer->model().unit(u).layout.tensors()) {
      const SafetensorsTensorInfo* info = file->Find(t.name);
      ASSERT_NE(info, nullptr) << t.name;
      std::vector<int64_t> shape = t.shape;
      if (t.name == "wte") shape[0] = model.vocab_size;
      EXPECT_EQ(info->shape, shape) << t.name;
      ASSERT_EQ(info->data.size(), info->numel * sizeof(float));
      EXPECT_EQ(
          std::memcmp(info->data.data(), trainer->model().FindParam(t.name), info->data.size()), 0)
          << t.name;
      ++seen;
    }
  }
  EXPECT_EQ(file->names().size(), seen);
}

TEST(ExportTest, ErrorsLeaveNoFile) {
  const std::string dir = FreshDir("export_errors");
  auto trainer = MakeTrainer(SmallConfig(1, dir));
  ASSERT_TRUE(trainer->Train().ok());
  ModelConfig other = trainer->model().config();
  other.d_model = 48;
  absl::StatusOr<ExportReport> wrong =
      ExportCheckpoint(other, dir + "/ckpt", dir + "/wrong.safetensors");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition) << wrong.status();
  EXPECT_FALSE(std::filesystem::exists(dir + "/wrong.safetensors"));

  absl::StatusOr<ExportReport> unwritable = ExportCheckpoint(
      trainer->model().config(), dir + "/ckpt", dir + "/no/such/dir/model.safetensors");
  EXPECT_FALSE(unwritable.ok());
  EXPECT_NE(unwritable.status().message().find(dir + "/no/such/dir"), absl::string_view::npos)
      << unwritable.status();
}

}  // namespace
}  // namespace spillway
