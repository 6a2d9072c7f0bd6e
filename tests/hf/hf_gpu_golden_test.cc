// The golden Hugging Face folders (tests/golden/hf_gpt2, hf_llama, made by transformers) loaded
// into models on the CUDA backend give transformers' logits (label gpu; skips without a GPU).
// The CPU backend's match is tested in tests/train/llama_train_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "engine/hf/hf_folder.h"
#include "engine/hf/hf_model.h"
#include "engine/model/model.h"
#include "kernels/backend.h"

namespace spillway {
namespace {

std::string GoldenDir(const std::string& name) {
  const char* source_dir = std::getenv("SPILLWAY_SOURCE_DIR");
  return absl::StrCat(source_dir != nullptr ? source_dir : ".", "/tests/golden/", name);
}

class HfGpuGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfGpuGoldenTest, LogitsMatchTransformers) {
  absl::StatusOr<std::unique_ptr<kernels::Ops>> ops = kernels::CreateOps("cuda");
  if (!ops.ok()) GTEST_SKIP() << "no CUDA backend here: " << ops.status().message();
  const std::string golden = GoldenDir(GetParam());
  absl::StatusOr<HfFolder> folder = HfFolder::Open(golden);
  ASSERT_TRUE(folder.ok()) << folder.status();
  absl::StatusOr<SafetensorsFile> ref = SafetensorsFile::Open(golden + "/reference.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  const std::vector<int32_t> inputs = ref->ReadInt32("inputs").value();
  const std::vector<int32_t> targets = ref->ReadInt32("targets").value();
  const std::vector<float> want = ref->ReadFloat("logits").value();
  ModelConfig config = folder->info().model;
  config.seq_len = 32;  // the references are rows of 32 tokens
  ASSERT_EQ(inputs.size() % config.seq_len, 0u);
  const int batch = static_cast<int>(inputs.size() / config.seq_len);
  absl::StatusOr<std::unique_ptr<Model>> model =
      CreateModel(config, batch, /*activation_checkpointing=*/false, ops->get());
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(LoadHfParams(*folder, **model).ok());
  (*model)->Forward(inputs.data(), targets.data());
  const int V = config.vocab_size, Vp = (*model)->padded_vocab();
  std::vector<float> got(inputs.size() * Vp);
  (*ops)->CopyToHost(got.data(), (*model)->logits(), got.size() * sizeof(float));
  ASSERT_TRUE((*ops)->Synchronize().ok());
  ASSERT_EQ(want.size(), inputs.size() * V);
  double diff2 = 0, want2 = 0;
  for (size_t r = 0; r < inputs.size(); ++r) {
    for (int v = 0; v < V; ++v) {
      const double d = got[r * Vp + v] - want[r * V + v];
      diff2 += d * d;
      want2 += static_cast<double>(want[r * V + v]) * want[r * V + v];
    }
  }
  const double rel = std::sqrt(diff2 / want2);
  std::printf("%s on the GPU: logits relative error vs transformers %.3g\n", GetParam().c_str(),
              rel);
  EXPECT_LT(rel, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Folders, HfGpuGoldenTest, ::testing::Values("hf_gpt2", "hf_llama"));

}  // namespace
}  // namespace spillway
