// HF folders in and out, against transformers' own files (tests/golden/hf_gpt2, hf_llama,
// made by tests/golden/make_hf_gpt2_reference.py):
//   - the GPT-2 folder loaded into spillway's CPU Gpt2 gives transformers' logits and loss;
//   - import -> checkpoint -> export gives back every tensor bitwise (fp32), as one file and
//     as shards; bf16 export holds exactly the bf16 rounding of each value;
//   - the Llama folder read through the Llama table and written back is bitwise the same.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/file_io.h"
#include "core/safetensors.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/hf/hf_folder.h"
#include "engine/hf/hf_model.h"
#include "engine/hf/hf_writer.h"
#include "engine/model/gpt2.h"
#include "engine/model/gpt2_layout.h"
#include "kernels/backend.h"
#include "tests/hf/hf_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::GoldenDir;

// transformers ran the reference in float64; these bound spillway's fp32 forward (as in
// tests/golden/gpt2_golden_test.cc). A transposed or misplaced tensor moves the logits by
// far more (order 1).
constexpr double kLogitsTol = 1e-5;
constexpr double kLossTol = 1e-5;

double RelativeError(std::span<const float> got, std::span<const float> want) {
  double diff2 = 0.0, want2 = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff2 += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    want2 += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff2 / want2);
}

// Every tensor of `want_file` is in the folder `dir` (one file or shards), with the same
// shape and bytes.
void ExpectSameTensors(const std::string& want_file, const std::string& dir) {
  absl::StatusOr<SafetensorsFile> want = SafetensorsFile::Open(want_file);
  ASSERT_TRUE(want.ok()) << want.status();
  std::vector<SafetensorsFile> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".safetensors") continue;
    absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(entry.path().string());
    ASSERT_TRUE(f.ok()) << f.status();
    files.push_back(*std::move(f));
  }
  size_t total = 0;
  for (const SafetensorsFile& f : files) total += f.names().size();
  EXPECT_EQ(total, want->names().size());
  for (const std::string& name : want->names()) {
    const SafetensorsTensorInfo* got = nullptr;
    for (const SafetensorsFile& f : files) {
      if (got == nullptr) got = f.Find(name);
    }
    ASSERT_NE(got, nullptr) << name;
    const SafetensorsTensorInfo& w = *want->Find(name);
    EXPECT_EQ(got->shape, w.shape) << name;
    EXPECT_EQ(got->dtype, w.dtype) << name;
    ASSERT_EQ(got->data.size(), w.data.size()) << name;
    EXPECT_EQ(std::memcmp(got->data.data(), w.data.data(), w.data.size()), 0) << name;
  }
}

TEST(HfGpt2Test, LogitsAndLossMatchTransformers) {
  absl::StatusOr<HfFolder> folder = HfFolder::Open(GoldenDir("hf_gpt2"));
  ASSERT_TRUE(folder.ok()) << folder.status();
  absl::StatusOr<SafetensorsFile> ref =
      SafetensorsFile::Open(GoldenDir("hf_gpt2") + "/reference.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  absl::StatusOr<std::vector<int32_t>> inputs = ref->ReadInt32("inputs");
  absl::StatusOr<std::vector<int32_t>> targets = ref->ReadInt32("targets");
  absl::StatusOr<std::vector<float>> want_logits = ref->ReadFloat("logits");
  absl::StatusOr<std::vector<float>> want_loss = ref->ReadFloat("loss");
  ASSERT_TRUE(inputs.ok() && targets.ok() && want_logits.ok() && want_loss.ok());

  const ModelConfig& config = folder->info().model;
  const int B = 2, T = config.seq_len, V = config.vocab_size;
  ASSERT_EQ(inputs->size(), static_cast<size_t>(B) * T);
  absl::StatusOr<std::unique_ptr<kernels::Ops>> ops = kernels::CreateOps("cpu");
  ASSERT_TRUE(ops.ok()) << ops.status();
  absl::StatusOr<std::unique_ptr<Gpt2>> model = Gpt2::Create(config, B, false, ops->get());
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE((*model)->InitParams(7).ok());
  ASSERT_TRUE(LoadHfParams(*folder, **model).ok());

  const float loss = (*model)->Forward(inputs->data(), targets->data());
  ASSERT_TRUE((*ops)->Synchronize().ok());
  const int Vp = (*model)->padded_vocab();
  std::vector<float> logits(static_cast<size_t>(B) * T * V);
  for (size_t row = 0; row < static_cast<size_t>(B) * T; ++row) {
    std::copy_n((*model)->logits() + row * Vp, V, logits.begin() + row * V);
  }
  const double logits_err = RelativeError(logits, *want_logits);
  const double loss_err = std::abs(loss - (*want_loss)[0]) / std::abs((*want_loss)[0]);
  std::printf("hf gpt2: logits rel err %.3e (tol %.0e), loss %.6f vs %.6f rel err %.3e\n",
              logits_err, kLogitsTol, loss, (*want_loss)[0], loss_err);
  EXPECT_LE(logits_err, kLogitsTol);
  EXPECT_LE(loss_err, kLossTol);
  // wte's padding rows are zero after loading, whatever InitParams put there.
  const float* wte = (*model)->FindParam("wte");
  for (int64_t i = static_cast<int64_t>(V) * config.d_model;
       i < static_cast<int64_t>(Vp) * config.d_model; ++i) {
    ASSERT_EQ(wte[i], 0.0f) << i;
  }
}

// A model with a shorter context takes the first rows of wpe; its first positions then give
// the same logits as the full model's.
TEST(HfGpt2Test, ShorterContextUsesTheFirstPositions) {
  absl::StatusOr<HfFolder> folder = HfFolder::Open(GoldenDir("hf_gpt2"));
  ASSERT_TRUE(folder.ok()) << folder.status();
  ModelConfig config = folder->info().model;
  config.seq_len = 8;
  absl::StatusOr<std::unique_ptr<kernels::Ops>> ops = kernels::CreateOps("cpu");
  ASSERT_TRUE(ops.ok());
  absl::StatusOr<std::unique_ptr<Gpt2>> model = Gpt2::Create(config, 1, false, ops->get());
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(LoadHfParams(*folder, **model).ok());
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Open(GoldenDir("hf_gpt2") + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<std::vector<float>> wpe = file->ReadFloat("transformer.wpe.weight");
  ASSERT_TRUE(wpe.ok());
  EXPECT_EQ(std::memcmp((*model)->FindParam("wpe"), wpe->data(), 8 * 64 * sizeof(float)), 0);

  config.seq_len = 64;  // longer than n_positions: refused
  absl::StatusOr<std::unique_ptr<Gpt2>> longer = Gpt2::Create(config, 1, false, ops->get());
  ASSERT_TRUE(longer.ok());
  absl::Status status = LoadHfParams(*folder, **longer);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("seq_len=64"), std::string::npos) << status;
}

TEST(HfGpt2Test, ImportThenExportIsBitwiseTheSame) {
  const std::string dir = FreshDir("roundtrip");
  absl::StatusOr<HfImportReport> imported = ImportHfCheckpoint(GoldenDir("hf_gpt2"), dir + "/ckpt");
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->tensors, 28u);
  EXPECT_EQ(imported->parameters, 108288u);
  // A checkpoint at step 0 that parameter loading reads (the checkpoint layer's own check).
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(dir + "/ckpt");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->step(), 0);
  EXPECT_TRUE(reader->HasBlob("h.1/params"));

  absl::StatusOr<HfExportReport> one =
      ExportHfFromCheckpoint(imported->model, dir + "/ckpt", dir + "/one");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->written.shards, 1);
  EXPECT_EQ(one->written.parameters, imported->parameters);
  ExpectSameTensors(GoldenDir("hf_gpt2") + "/model.safetensors", dir + "/one");

  HfWriteOptions sharded;
  sharded.max_shard_bytes = 100'000;
  absl::StatusOr<HfExportReport> many =
      ExportHfFromCheckpoint(imported->model, dir + "/ckpt", dir + "/many", sharded);
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_GT(many->written.shards, 2);
  EXPECT_FALSE(std::filesystem::exists(dir + "/many/model.safetensors"));
  ExpectSameTensors(GoldenDir("hf_gpt2") + "/model.safetensors", dir + "/many");

  // The sharded folder reads back (through its index) to the same Units as the original.
  absl::StatusOr<HfFolder> original = HfFolder::Open(GoldenDir("hf_gpt2"));
  absl::StatusOr<HfFolder> reread = HfFolder::Open(dir + "/many");
  ASSERT_TRUE(original.ok() && reread.ok()) << reread.status();
  EXPECT_EQ(reread->files().size(), static_cast<size_t>(many->written.shards));
  for (const UnitLayout& unit : Gpt2Layouts(imported->model)) {
    std::vector<float> a(unit.numel()), b(unit.numel());
    ASSERT_TRUE(original->LoadUnit(unit, imported->model, std::span<float>(a)).ok());
    ASSERT_TRUE(reread->LoadUnit(unit, imported->model, std::span<float>(b)).ok());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << unit.name();
  }
}

TEST(HfGpt2Test, Bf16ExportHoldsTheRoundedValues) {
  const std::string dir = FreshDir("bf16");
  absl::StatusOr<HfImportReport> imported = ImportHfCheckpoint(GoldenDir("hf_gpt2"), dir + "/ckpt");
  ASSERT_TRUE(imported.ok()) << imported.status();
  HfWriteOptions options;
  options.dtype = SafetensorsDtype::kBF16;
  ASSERT_TRUE(ExportHfFromCheckpoint(imported->model, dir + "/ckpt", dir + "/bf16", options).ok());
  absl::StatusOr<std::string> config = ReadFileToString(dir + "/bf16/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_NE(config->find("\"torch_dtype\": \"bfloat16\""), std::string::npos) << *config;

  absl::StatusOr<SafetensorsFile> want =
      SafetensorsFile::Open(GoldenDir("hf_gpt2") + "/model.safetensors");
  absl::StatusOr<SafetensorsFile> got = SafetensorsFile::Open(dir + "/bf16/model.safetensors");
  ASSERT_TRUE(want.ok() && got.ok());
  for (const std::string& name : want->names()) {
    const SafetensorsTensorInfo* info = got->Find(name);
    ASSERT_NE(info, nullptr) << name;
    ASSERT_EQ(info->dtype, SafetensorsDtype::kBF16) << name;
    absl::StatusOr<std::vector<float>> w = want->ReadFloat(name);
    ASSERT_TRUE(w.ok());
    const std::vector<std::byte> expected = EncodeBf16(*w);
    ASSERT_EQ(info->data.size(), expected.size()) << name;
    EXPECT_EQ(std::memcmp(info->data.data(), expected.data(), expected.size()), 0) << name;
  }
  // And it loads back (bf16 -> fp32) within bf16's rounding.
  absl::StatusOr<HfFolder> folder = HfFolder::Open(dir + "/bf16");
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->info().dtype, "bfloat16");
  const UnitLayout embed = Gpt2Layouts(imported->model).front();
  std::vector<float> values(embed.numel());
  ASSERT_TRUE(folder->LoadUnit(embed, imported->model, std::span<float>(values)).ok());
  absl::StatusOr<std::vector<float>> wte = want->ReadFloat("transformer.wte.weight");
  ASSERT_TRUE(wte.ok());
  for (size_t i = 0; i < wte->size(); ++i) {
    ASSERT_NEAR(values[i], (*wte)[i], std::abs((*wte)[i]) / 256 + 1e-30) << i;
  }
}

// Llama through its table: read transformers' folder into Llama layouts and write it back.
TEST(HfLlamaTest, ReadAndWriteBackIsBitwiseTheSame) {
  absl::StatusOr<HfFolder> folder = HfFolder::Open(GoldenDir("hf_llama"));
  ASSERT_TRUE(folder.ok()) << folder.status();
  const ModelConfig& model = folder->info().model;
  const std::vector<UnitLayout> units = testing_util::LlamaLayouts(model);
  EXPECT_TRUE(folder->UnusedTensors(units).empty());
  std::vector<std::vector<float>> params;
  for (const UnitLayout& unit : units) {
    params.emplace_back(unit.numel());
    ASSERT_TRUE(folder->LoadUnit(unit, model, std::span<float>(params.back())).ok());
  }
  // Spot check: lm_head is its own tensor (untied), padding rows zero.
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Open(GoldenDir("hf_llama") + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<std::vector<float>> head = file->ReadFloat("lm_head.weight");
  ASSERT_TRUE(head.ok());
  const TensorSpec* lm_head = units.back().Find("lm_head.weight");
  ASSERT_NE(lm_head, nullptr);
  EXPECT_EQ(std::memcmp(params.back().data() + lm_head->offset, head->data(),
                        head->size() * sizeof(float)),
            0);
  for (size_t i = head->size(); i < lm_head->numel; ++i) {
    ASSERT_EQ(params.back()[lm_head->offset + i], 0.0f);
  }

  const std::string dir = FreshDir("llama");
  absl::StatusOr<HfWriteReport> written = WriteHfFolder(
      model, units,
      [&](int u, std::span<float> dst) {
        std::copy(params[u].begin(), params[u].end(), dst.begin());
        return absl::OkStatus();
      },
      dir + "/out");
  ASSERT_TRUE(written.ok()) << written.status();
  ExpectSameTensors(GoldenDir("hf_llama") + "/model.safetensors", dir + "/out");
  absl::StatusOr<HfFolder> back = HfFolder::Open(dir + "/out");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->info().model.n_kv_head, 2);
  EXPECT_EQ(back->info().model.ffn_hidden, 64);
}

// A tied Llama (tie_word_embeddings true, no lm_head.weight in the file) fills lm_head from
// embed_tokens.
TEST(HfLlamaTest, TiedHeadReadsTheEmbedding) {
  const std::string dir = FreshDir("llama_tied");
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Open(GoldenDir("hf_llama") + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  std::vector<SafetensorsTensorView> views;
  for (const std::string& name : file->names()) {
    if (name == "lm_head.weight") continue;
    const SafetensorsTensorInfo& info = *file->Find(name);
    views.push_back({name, info.dtype, info.shape, info.data});
  }
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", views).ok());
  absl::StatusOr<std::string> config = ReadFileToString(GoldenDir("hf_llama") + "/config.json");
  ASSERT_TRUE(config.ok());
  nlohmann::json json = nlohmann::json::parse(*config);
  json["tie_word_embeddings"] = true;
  ASSERT_TRUE(WriteFileAtomic(dir + "/config.json", json.dump()).ok());

  absl::StatusOr<HfFolder> folder = HfFolder::Open(dir);
  ASSERT_TRUE(folder.ok()) << folder.status();
  const std::vector<UnitLayout> units = testing_util::LlamaLayouts(folder->info().model);
  std::vector<float> head(units.back().numel());
  ASSERT_TRUE(folder->LoadUnit(units.back(), folder->info().model, std::span<float>(head)).ok());
  absl::StatusOr<std::vector<float>> embed = file->ReadFloat("model.embed_tokens.weight");
  ASSERT_TRUE(embed.ok());
  EXPECT_EQ(std::memcmp(head.data() + units.back().Find("lm_head.weight")->offset, embed->data(),
                        embed->size() * sizeof(float)),
            0);
}

}  // namespace
}  // namespace spillway
