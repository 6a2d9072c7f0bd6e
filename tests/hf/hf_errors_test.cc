// What goes wrong with HF folders is named: missing files, a shard the index names but the
// folder lacks, a missing tensor, a wrong shape (both shapes given), an unsupported dtype,
// tensors the model would drop, an unknown model_type; and what is merely different is read:
// F16/BF16 weights (converted exactly as the scalar conversions do) and files saved from the
// base model class (no "transformer." prefix).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "core/file_io.h"
#include "core/safetensors.h"
#include "engine/hf/hf_folder.h"
#include "engine/hf/hf_model.h"
#include "engine/model/gpt2_layout.h"
#include "tests/hf/hf_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::GoldenDir;

struct OwnedTensor {
  std::string name;
  SafetensorsDtype dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> data;
};

// Writes `dir`/config.json and `dir`/model.safetensors: the GPT-2 reference folder's, with
// `edit` applied to its tensors.
void WriteEditedGpt2(const std::string& dir,
                     const std::function<void(std::vector<OwnedTensor>&)>& edit) {
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(GoldenDir("hf_gpt2") + "/config.json", dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::Open(GoldenDir("hf_gpt2") + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<OwnedTensor> tensors;
  for (const std::string& name : file->names()) {
    const SafetensorsTensorInfo& info = *file->Find(name);
    tensors.push_back({name, info.dtype, info.shape, {info.data.begin(), info.data.end()}});
  }
  edit(tensors);
  std::vector<SafetensorsTensorView> views;
  for (const OwnedTensor& t : tensors) views.push_back({t.name, t.dtype, t.shape, t.data});
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", views).ok());
}

OwnedTensor* Find(std::vector<OwnedTensor>& tensors, const std::string& name) {
  for (OwnedTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return &tensors.front();
}

// Import's error for the edited folder.
absl::Status ImportError(const std::string& dir) {
  absl::StatusOr<HfImportReport> report = ImportHfCheckpoint(dir, dir + "_ckpt");
  EXPECT_FALSE(report.ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "_ckpt/latest"));
  return report.status();
}

void ExpectMentions(const absl::Status& status, const std::vector<std::string>& parts) {
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos)
        << "\"" << part << "\" not in: " << status;
  }
}

TEST(HfErrorsTest, MissingFiles) {
  const std::string dir = FreshDir("missing_files");
  absl::StatusOr<HfFolder> no_config = HfFolder::Open(dir);
  EXPECT_EQ(no_config.status().code(), absl::StatusCode::kNotFound);
  ExpectMentions(no_config.status(), {dir, "config.json"});

  std::filesystem::copy_file(GoldenDir("hf_gpt2") + "/config.json", dir + "/config.json");
  absl::StatusOr<HfFolder> no_weights = HfFolder::Open(dir);
  EXPECT_EQ(no_weights.status().code(), absl::StatusCode::kNotFound);
  ExpectMentions(no_weights.status(), {"model.safetensors.index.json", "model.safetensors"});

  ASSERT_TRUE(WriteFileAtomic(dir + "/model.safetensors.index.json", "{\"metadata\": {}}").ok());
  absl::StatusOr<HfFolder> bad_index = HfFolder::Open(dir);
  EXPECT_EQ(bad_index.status().code(), absl::StatusCode::kInvalidArgument);
  ExpectMentions(bad_index.status(), {"model.safetensors.index.json", "weight_map"});
}

TEST(HfErrorsTest, IndexNamingAMissingShard) {
  const std::string dir = FreshDir("missing_shard");
  absl::StatusOr<HfImportReport> imported = ImportHfCheckpoint(GoldenDir("hf_gpt2"), dir + "/ckpt");
  ASSERT_TRUE(imported.ok()) << imported.status();
  HfWriteOptions options;
  options.max_shard_bytes = 100'000;
  ASSERT_TRUE(ExportHfFromCheckpoint(imported->model, dir + "/ckpt", dir + "/hf", options).ok());
  ASSERT_TRUE(HfFolder::Open(dir + "/hf").ok());
  const std::string index_path = dir + "/hf/model.safetensors.index.json";
  absl::StatusOr<std::string> text = ReadFileToString(index_path);
  ASSERT_TRUE(text.ok());
  nlohmann::json index = nlohmann::json::parse(*text);
  const std::string first = index["weight_map"]["transformer.wte.weight"];
  const std::string shard = index["weight_map"]["transformer.h.1.mlp.c_fc.weight"];
  ASSERT_NE(first, shard);

  // The index puts a tensor in a shard that does not hold it.
  index["weight_map"]["transformer.h.1.mlp.c_fc.weight"] = first;
  ASSERT_TRUE(WriteFileAtomic(index_path, index.dump()).ok());
  absl::StatusOr<HfFolder> folder = HfFolder::Open(dir + "/hf");
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kNotFound);
  ExpectMentions(folder.status(), {"transformer.h.1.mlp.c_fc.weight", first, "does not hold"});

  index["weight_map"]["transformer.h.1.mlp.c_fc.weight"] = shard;
  ASSERT_TRUE(WriteFileAtomic(index_path, index.dump()).ok());
  ASSERT_TRUE(HfFolder::Open(dir + "/hf").ok());
  std::filesystem::remove(dir + "/hf/" + shard);
  folder = HfFolder::Open(dir + "/hf");
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kNotFound);
  ExpectMentions(folder.status(), {shard, "index.json", "does not exist"});
}

TEST(HfErrorsTest, UnknownModelType) {
  const std::string dir = FreshDir("unknown_type");
  WriteEditedGpt2(dir, [](std::vector<OwnedTensor>&) {});
  ASSERT_TRUE(WriteFileAtomic(dir + "/config.json", R"({"model_type": "falcon"})").ok());
  absl::StatusOr<HfFolder> folder = HfFolder::Open(dir);
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument);
  ExpectMentions(folder.status(), {"\"falcon\"", "config.json", "gpt2"});
  ModelConfig model;
  model.type = "falcon";
  EXPECT_EQ(ModelLayouts(model).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HfErrorsTest, MissingTensorIsNamed) {
  const std::string dir = FreshDir("missing_tensor");
  WriteEditedGpt2(dir, [](std::vector<OwnedTensor>& t) {
    std::erase_if(t, [](const OwnedTensor& x) { return x.name == "transformer.h.1.ln_2.bias"; });
  });
  const absl::Status status = ImportError(dir);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  ExpectMentions(status, {"transformer.h.1.ln_2.bias", "h.1.ln_2.bias", "model.safetensors"});
}

TEST(HfErrorsTest, ShapeMismatchGivesBothShapes) {
  const std::string dir = FreshDir("shape");
  WriteEditedGpt2(dir, [](std::vector<OwnedTensor>& t) {
    Find(t, "transformer.h.0.attn.c_attn.weight")->shape = {192, 64};  // nn.Linear's, not HF's
  });
  const absl::Status status = ImportError(dir);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ExpectMentions(status, {"transformer.h.0.attn.c_attn.weight", "[192, 64]", "[64, 192]"});

  WriteEditedGpt2(dir, [](std::vector<OwnedTensor>& t) {
    OwnedTensor* wte = Find(t, "transformer.wte.weight");
    wte->shape = {95, 64};
    wte->data.resize(95 * 64 * 4);
  });
  ExpectMentions(ImportError(dir), {"transformer.wte.weight", "[95, 64]", "[96, 64]"});
}

TEST(HfErrorsTest, UnsupportedDtypeIsNamed) {
  const std::string dir = FreshDir("dtype");
  WriteEditedGpt2(dir, [](std::vector<OwnedTensor>& t) {
    Find(t, "transformer.ln_f.bias")->dtype = SafetensorsDtype::kI32;
  });
  const absl::Status status = ImportError(dir);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ExpectMentions(status, {"transformer.ln_f.bias", "I32", "model.safetensors"});
}

TEST(HfErrorsTest, TensorsTheModelWouldDropAreRefused) {
  const std::string dir = FreshDir("extra");
  WriteEditedGpt2(dir, [](std::vector<OwnedTensor>& t) {
    t.push_back({"transformer.h.0.adapter.weight",
                 SafetensorsDtype::kF32,
                 {4},
                 std::vector<std::byte>(16)});
    // Buffers and the tied head are not parameters: accepted.
    t.push_back(
        {"transformer.h.0.attn.bias", SafetensorsDtype::kF32, {4}, std::vector<std::byte>(16)});
    t.push_back({"lm_head.weight", SafetensorsDtype::kF32, {4}, std::vector<std::byte>(16)});
  });
  const absl::Status status = ImportError(dir);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ExpectMentions(status, {"transformer.h.0.adapter.weight"});
  EXPECT_EQ(status.message().find("attn.bias"), std::string::npos) << status;
  EXPECT_EQ(status.message().find("lm_head"), std::string::npos) << status;
}

TEST(HfErrorsTest, ExistingOutputsAreNotTouched) {
  const std::string dir = FreshDir("outputs");
  absl::StatusOr<HfImportReport> imported = ImportHfCheckpoint(GoldenDir("hf_gpt2"), dir + "/ckpt");
  ASSERT_TRUE(imported.ok()) << imported.status();
  absl::StatusOr<HfImportReport> again = ImportHfCheckpoint(GoldenDir("hf_gpt2"), dir + "/ckpt");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  ExpectMentions(again.status(), {dir + "/ckpt", "step_00000000"});

  std::filesystem::create_directories(dir + "/full");
  ASSERT_TRUE(WriteFileAtomic(dir + "/full/keep.txt", "keep").ok());
  absl::StatusOr<HfExportReport> full =
      ExportHfFromCheckpoint(imported->model, dir + "/ckpt", dir + "/full");
  EXPECT_EQ(full.status().code(), absl::StatusCode::kFailedPrecondition);
  ExpectMentions(full.status(), {dir + "/full"});
  EXPECT_TRUE(std::filesystem::exists(dir + "/full/keep.txt"));

  ModelConfig other = imported->model;
  other.d_model = 32;
  absl::StatusOr<HfExportReport> wrong =
      ExportHfFromCheckpoint(other, dir + "/ckpt", dir + "/wrong");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(dir + "/wrong"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/wrong.tmp"));

  std::filesystem::create_directories(dir + "/empty");  // an empty folder is fine
  EXPECT_TRUE(ExportHfFromCheckpoint(imported->model, dir + "/ckpt", dir + "/empty/").ok());
  EXPECT_TRUE(std::filesystem::exists(dir + "/empty/model.safetensors"));
}

// F16 and BF16 weights load as the scalar conversions give them; names without the base
// model's prefix (GPT2Model.save_pretrained, the hub's gpt2) load the same.
TEST(HfReadTest, HalfDtypesAndBaseModelNames) {
  absl::StatusOr<HfFolder> golden = HfFolder::Open(GoldenDir("hf_gpt2"));
  ASSERT_TRUE(golden.ok());
  const ModelConfig& model = golden->info().model;
  const std::vector<UnitLayout> units = Gpt2Layouts(model);
  for (const SafetensorsDtype dtype : {SafetensorsDtype::kF16, SafetensorsDtype::kBF16}) {
    const std::string dir =
        FreshDir(std::string("half_") + std::string(SafetensorsDtypeName(dtype)));
    WriteEditedGpt2(dir, [dtype](std::vector<OwnedTensor>& t) {
      for (OwnedTensor& x : t) {
        std::vector<float> values(x.data.size() / 4);
        std::memcpy(values.data(), x.data.data(), x.data.size());
        x.data = dtype == SafetensorsDtype::kF16 ? EncodeF16(values) : EncodeBf16(values);
        x.dtype = dtype;
        x.name = x.name.substr(std::string("transformer.").size());
      }
    });
    absl::StatusOr<HfFolder> folder = HfFolder::Open(dir);
    ASSERT_TRUE(folder.ok()) << folder.status();
    EXPECT_TRUE(folder->UnusedTensors(units).empty());
    for (const UnitLayout& unit : units) {
      std::vector<float> want(unit.numel()), got(unit.numel());
      ASSERT_TRUE(golden->LoadUnit(unit, model, std::span<float>(want)).ok());
      ASSERT_TRUE(folder->LoadUnit(unit, model, std::span<float>(got)).ok());
      for (float& w : want) {
        w = dtype == SafetensorsDtype::kF16 ? F16ToFloat(FloatToF16(w))
                                            : Bf16ToFloat(FloatToBf16(w));
      }
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << unit.name() << " " << SafetensorsDtypeName(dtype);
    }
  }
}

}  // namespace
}  // namespace spillway
