// Training Llama from a config, and model.init_from: a tiny Llama's loss falls, resume and
// activation checkpointing are bitwise; a Hugging Face folder given as init_from gives the same
// logits as LoadHfParams (and transformers' reference), for Llama and GPT-2; a spillway
// checkpoint as init_from gives its parameters; a folder of another shape is refused naming
// both.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/safetensors.h"
#include "engine/data/token_file.h"
#include "engine/hf/hf_folder.h"
#include "engine/hf/hf_model.h"
#include "engine/train/export.h"
#include "engine/train/trainer.h"
#include "kernels/backend.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::MakeTrainer;

std::string LlamaConfig(int64_t steps, const std::string& dir) {
  return testing_util::SmallLlamaConfig(steps, dir);
}

// `path` under the source tree (ctest sets SPILLWAY_SOURCE_DIR).
std::string SourcePath(const std::string& path) {
  const char* source_dir = std::getenv("SPILLWAY_SOURCE_DIR");
  return absl::StrCat(source_dir != nullptr ? source_dir : ".", "/", path);
}

std::string GoldenDir(const std::string& name) { return SourcePath("tests/golden/" + name); }

TEST(LlamaTrainTest, LossFallsAndResumeIsBitwise) {
  const std::string dir_a = FreshDir("llama_full");
  const std::string dir_b = FreshDir("llama_split");
  auto full = MakeTrainer(LlamaConfig(10, dir_a));
  ASSERT_EQ(full->model().config().type, "llama");
  {
    absl::Status trained = full->Train();
    ASSERT_TRUE(trained.ok()) << trained;
  }
  const std::vector<double>& losses = full->step_losses();
  ASSERT_EQ(losses.size(), 10u);
  EXPECT_LT(losses.back(), losses.front() - 0.5) << "from " << losses.front();

  ASSERT_TRUE(MakeTrainer(LlamaConfig(6, dir_b))->Train().ok());
  auto resumed = MakeTrainer(LlamaConfig(10, dir_b));
  absl::Status status = resumed->Resume(dir_b + "/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(resumed->Train().ok());
  ASSERT_EQ(resumed->step_losses().size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(losses[6 + i], resumed->step_losses()[i]) << "step " << 7 + i;
  }
  testing_util::ExpectSameState(full->model(), resumed->model());
}

TEST(LlamaTrainTest, ActivationCheckpointingIsBitwise) {
  auto plain = MakeTrainer(LlamaConfig(4, FreshDir("llama_plain")));
  const std::string json = LlamaConfig(4, FreshDir("llama_recomputed"));
  auto recomputed = MakeTrainer(absl::StrCat(R"({"activation_checkpointing": {"enabled": true},)",
                                             json.substr(json.find('{') + 1)));
  ASSERT_LT(recomputed->model().activation_bytes(), plain->model().activation_bytes());
  ASSERT_TRUE(plain->Train().ok());
  ASSERT_TRUE(recomputed->Train().ok());
  EXPECT_EQ(plain->step_losses(), recomputed->step_losses());
  testing_util::ExpectSameState(plain->model(), recomputed->model());
}

// Resuming with another Llama shape (only a Llama key differs) is refused.
TEST(LlamaTrainTest, CheckpointOfAnotherLlamaShapeIsRefused) {
  const std::string dir = FreshDir("llama_other_shape");
  ASSERT_TRUE(MakeTrainer(LlamaConfig(1, dir))->Train().ok());
  const std::string other =
      absl::StrReplaceAll(LlamaConfig(2, dir), {{R"("n_kv_head": 2)", R"("n_kv_head": 1)"}});
  absl::Status status = MakeTrainer(other)->Resume(dir + "/ckpt");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("\"n_kv_head\":2"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("\"n_kv_head\":1"), absl::string_view::npos) << status;
}

// `spillway export` (one safetensors file) of a Llama checkpoint: every tensor, by its name, the
// vocabulary rows without padding (vocab 300, padded to 320).
TEST(LlamaTrainTest, ExportWritesEveryTensor) {
  const std::string dir = FreshDir("llama_export");
  auto trainer = MakeTrainer(
      absl::StrReplaceAll(LlamaConfig(1, dir), {{R"("vocab_size": 256)", R"("vocab_size": 300)"}}));
  ASSERT_NE(trainer, nullptr);
  ASSERT_TRUE(trainer->Train().ok());
  absl::StatusOr<ExportReport> report =
      ExportCheckpoint(trainer->model().config(), dir + "/ckpt", dir + "/model.safetensors");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->parameters, trainer->model().param_count());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsTensorInfo* head = file->Find("lm_head.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->shape, (std::vector<int64_t>{300, 32}));
  EXPECT_EQ(std::memcmp(head->data.data(), trainer->model().FindParam("lm_head.weight"),
                        head->data.size()),
            0);
  EXPECT_NE(file->Find("layers.1.mlp.gate_proj.weight"), nullptr);
}

// examples/llama-tiny/config.json as shipped builds its model and trains (a few steps here).
TEST(LlamaTrainTest, TinyExampleTrains) {
  absl::StatusOr<Config> config = LoadConfig(SourcePath("examples/llama-tiny/config.json"));
  ASSERT_TRUE(config.ok()) << config.status();
  const std::string dir = FreshDir("llama_tiny_example");
  config->checkpoint.dir = dir + "/checkpoints";
  config->log.metrics_path = dir + "/metrics.jsonl";
  config->trainer.steps = 3;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ((*trainer)->model().config().type, "llama");
  absl::Status trained = (*trainer)->Train();
  ASSERT_TRUE(trained.ok()) << trained;
}

// A run on token files of the golden folders' vocabulary (96), micro-batches of 2 x seq_len,
// with `model` as its model section.
std::string HfRunConfig(const std::string& dir, const std::string& model) {
  std::vector<uint32_t> tokens(4000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i * 7 % 96);
  EXPECT_TRUE(WriteTokenFile(dir + "/train.bin", tokens, 96).ok());
  return absl::StrReplaceAll(R"({
    "train_batch_size": 2, "train_micro_batch_size_per_gpu": 2,
    "model": MODEL,
    "data": {"train_path": "DIR/train.bin"},
    "trainer": {"steps": 1, "seed": 5}
  })",
                             {{"MODEL", model}, {"DIR", dir}});
}

constexpr char kHfLlamaModel[] =
    R"({"type": "llama", "n_layer": 2, "n_head": 4, "n_kv_head": 2, "d_model": 32,
        "ffn_hidden": 64, "seq_len": 32, "vocab_size": 96, "init_from": "GOLDEN"})";
constexpr char kHfGpt2Model[] =
    R"({"type": "gpt2", "n_layer": 2, "n_head": 4, "d_model": 64, "seq_len": 32,
        "vocab_size": 96, "init_from": "GOLDEN"})";

// Trainer with model.init_from = the golden folder `name` against the folder loaded by
// LoadHfParams into a model built apart: the same logits, bit for bit, and transformers'.
void ExpectInitFromHfMatchesLoadHfParams(const std::string& name, const std::string& model) {
  const std::string golden = GoldenDir(name);
  auto trainer = MakeTrainer(
      HfRunConfig(FreshDir("init_" + name), absl::StrReplaceAll(model, {{"GOLDEN", golden}})));
  ASSERT_NE(trainer, nullptr);
  absl::StatusOr<SafetensorsFile> ref = SafetensorsFile::Open(golden + "/reference.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  std::vector<int32_t> inputs = ref->ReadInt32("inputs").value();
  std::vector<int32_t> targets = ref->ReadInt32("targets").value();
  std::vector<float> want_logits = ref->ReadFloat("logits").value();

  absl::StatusOr<HfFolder> folder = HfFolder::Open(golden);
  ASSERT_TRUE(folder.ok()) << folder.status();
  auto ops = kernels::CreateOps("cpu").value();
  ModelConfig config = trainer->model().config();
  config.init_from.clear();
  absl::StatusOr<std::unique_ptr<Model>> direct = CreateModel(config, 2, false, ops.get());
  ASSERT_TRUE(direct.ok()) << direct.status();
  ASSERT_TRUE(LoadHfParams(*folder, **direct).ok());

  const float loss_a = trainer->model().Forward(inputs.data(), targets.data());
  const float loss_b = (*direct)->Forward(inputs.data(), targets.data());
  EXPECT_EQ(loss_a, loss_b);
  const int V = config.vocab_size, Vp = (*direct)->padded_vocab();
  const size_t rows = inputs.size();
  ASSERT_EQ(want_logits.size(), rows * V);
  EXPECT_EQ(std::memcmp(trainer->model().logits(), (*direct)->logits(), rows * Vp * sizeof(float)),
            0);
  double diff2 = 0, want2 = 0;
  for (size_t r = 0; r < rows; ++r) {
    for (int v = 0; v < V; ++v) {
      const double d = trainer->model().logits()[r * Vp + v] - want_logits[r * V + v];
      diff2 += d * d;
      want2 += static_cast<double>(want_logits[r * V + v]) * want_logits[r * V + v];
    }
  }
  EXPECT_LT(std::sqrt(diff2 / want2), 1e-5) << name << ": against transformers' logits";
  // And it trains from there.
  ASSERT_TRUE(trainer->Train().ok());
  EXPECT_EQ(trainer->step(), 1);
}

TEST(InitFromTest, HfLlamaFolderGivesLoadHfParamsLogits) {
  ExpectInitFromHfMatchesLoadHfParams("hf_llama", kHfLlamaModel);
}

TEST(InitFromTest, HfGpt2FolderGivesLoadHfParamsLogits) {
  ExpectInitFromHfMatchesLoadHfParams("hf_gpt2", kHfGpt2Model);
}

TEST(InitFromTest, HfFolderOfAnotherShapeIsRefusedNamingBoth) {
  const std::string model = absl::StrReplaceAll(
      kHfLlamaModel,
      {{"GOLDEN", GoldenDir("hf_llama")}, {R"("n_kv_head": 2)", R"("n_kv_head": 4)"}});
  absl::StatusOr<Config> config = ParseConfig(HfRunConfig(FreshDir("init_other"), model));
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr);
  ASSERT_FALSE(trainer.ok());
  const std::string message(trainer.status().message());
  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kFailedPrecondition) << message;
  EXPECT_NE(message.find("model.init_from"), std::string::npos) << message;
  EXPECT_NE(message.find("n_kv_head=2"), std::string::npos) << message;
  EXPECT_NE(message.find("n_kv_head=4"), std::string::npos) << message;
}

TEST(InitFromTest, MissingPathIsNamed) {
  const std::string model = absl::StrReplaceAll(kHfLlamaModel, {{"GOLDEN", "/no/such/folder"}});
  absl::StatusOr<Config> config = ParseConfig(HfRunConfig(FreshDir("init_missing"), model));
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr);
  ASSERT_FALSE(trainer.ok());
  EXPECT_NE(trainer.status().message().find("model.init_from"), absl::string_view::npos)
      << trainer.status();
  EXPECT_NE(trainer.status().message().find("/no/such/folder"), absl::string_view::npos)
      << trainer.status();
}

// A spillway checkpoint as init_from: the new run starts at step 0 from its parameters.
TEST(InitFromTest, CheckpointGivesItsParameters) {
  const std::string dir = FreshDir("init_ckpt_source");
  auto source = MakeTrainer(LlamaConfig(3, dir));
  ASSERT_TRUE(source->Train().ok());
  const std::string json = absl::StrReplaceAll(
      LlamaConfig(3, FreshDir("init_ckpt_target")),
      {{R"("rope_theta": 500.0)",
        absl::StrCat(R"("rope_theta": 500.0, "init_from": ")", dir, R"(/ckpt")")}});
  auto started = MakeTrainer(json);
  EXPECT_EQ(started->step(), 0);
  for (int u = 0; u < source->model().num_units(); ++u) {
    const UnitState& a = source->model().unit(u);
    const UnitState& b = started->model().unit(u);
    EXPECT_EQ(std::memcmp(a.params.data(), b.params.data(), a.params.bytes()), 0)
        << a.layout.name();
  }
  ASSERT_TRUE(started->Train().ok());
}

}  // namespace
}  // namespace spillway
