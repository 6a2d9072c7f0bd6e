// `spillway import` and `spillway export --format hf` end to end: the reference folder
// imported, evaluated and exported gives back transformers' tensors bitwise; usage errors
// exit 2 naming the option.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "engine/data/token_file.h"
#include "tests/cli/run_spillway.h"
#include "tests/hf/hf_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::GoldenDir;

using Result = testing_util::CliResult;
using testing_util::RunSpillway;

// A config whose model section is `model` (by default the GPT-2 reference folder's), with token
// files of its vocabulary (96) in `dir`.
std::string WriteConfig(
    const std::string& dir,
    const std::string& model =
        R"({"n_layer": 2, "n_head": 4, "d_model": 64, "seq_len": 32, "vocab_size": 96})") {
  std::vector<uint32_t> tokens(4000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = (i * 37 + i / 7) % 96;
  EXPECT_TRUE(WriteTokenFile(dir + "/train.bin", tokens, 96).ok());
  EXPECT_TRUE(WriteTokenFile(dir + "/val.bin", tokens, 96).ok());
  const std::string config = absl::StrReplaceAll(R"({
    "train_batch_size": 2, "train_micro_batch_size_per_gpu": 2,
    "model": MODEL,
    "data": {"train_path": "DIR/train.bin", "val_path": "DIR/val.bin"},
    "trainer": {"steps": 1, "eval_batches": 2}
  })",
                                                 {{"DIR", dir}, {"MODEL", model}});
  EXPECT_TRUE(WriteFileAtomic(dir + "/config.json", config).ok());
  return dir + "/config.json";
}

TEST(HfCliTest, ImportEvalExport) {
  const std::string dir = FreshDir("cli");
  WriteConfig(dir);
  Result imported = RunSpillway(absl::StrCat("import ", GoldenDir("hf_gpt2"), " ", dir, "/ckpt"));
  ASSERT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_NE(imported.output.find("108288 parameters"), std::string::npos) << imported.output;
  EXPECT_NE(imported.output.find("\"d_model\":64"), std::string::npos) << imported.output;

  Result eval = RunSpillway(absl::StrCat("eval ", dir, "/config.json --checkpoint ", dir, "/ckpt"));
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(eval.output.find("val loss"), std::string::npos) << eval.output;

  Result exported = RunSpillway(absl::StrCat("export ", dir, "/config.json --checkpoint ", dir,
                                             "/ckpt --output ", dir, "/hf --format hf"));
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  absl::StatusOr<SafetensorsFile> want =
      SafetensorsFile::Open(GoldenDir("hf_gpt2") + "/model.safetensors");
  absl::StatusOr<SafetensorsFile> got = SafetensorsFile::Open(dir + "/hf/model.safetensors");
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_EQ(got->names().size(), want->names().size());
  for (const std::string& name : want->names()) {
    const SafetensorsTensorInfo* g = got->Find(name);
    ASSERT_NE(g, nullptr) << name;
    const SafetensorsTensorInfo& w = *want->Find(name);
    ASSERT_EQ(g->data.size(), w.data.size()) << name;
    EXPECT_EQ(std::memcmp(g->data.data(), w.data.data(), w.data.size()), 0) << name;
  }

  Result sharded = RunSpillway(absl::StrCat("export ", dir, "/config.json --checkpoint ", dir,
                                            "/ckpt --output ", dir,
                                            "/hf_bf16 --format hf --dtype bf16 "
                                            "--max-shard-size 100KB"));
  ASSERT_EQ(sharded.exit_code, 0) << sharded.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/hf_bf16/model.safetensors.index.json"));
  EXPECT_NE(sharded.output.find("bf16, 3 files"), std::string::npos) << sharded.output;
}

// Llama: the model section `import` prints is the config's; export gives back the tensors.
TEST(HfCliTest, LlamaImportEvalExport) {
  const std::string dir = FreshDir("cli_llama");
  Result imported = RunSpillway(absl::StrCat("import ", GoldenDir("hf_llama"), " ", dir, "/ckpt"));
  ASSERT_EQ(imported.exit_code, 0) << imported.output;
  const std::string marker = "config \"model\" section: ";
  const size_t at = imported.output.find(marker);
  ASSERT_NE(at, std::string::npos) << imported.output;
  const size_t begin = at + marker.size();
  const std::string section =
      imported.output.substr(begin, imported.output.find('\n', begin) - begin);
  EXPECT_NE(section.find("\"n_kv_head\":2"), std::string::npos) << section;
  WriteConfig(dir, section);

  Result eval = RunSpillway(absl::StrCat("eval ", dir, "/config.json --checkpoint ", dir, "/ckpt"));
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(eval.output.find("val loss"), std::string::npos) << eval.output;

  Result exported = RunSpillway(absl::StrCat("export ", dir, "/config.json --checkpoint ", dir,
                                             "/ckpt --output ", dir, "/hf --format hf"));
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  absl::StatusOr<SafetensorsFile> want =
      SafetensorsFile::Open(GoldenDir("hf_llama") + "/model.safetensors");
  absl::StatusOr<SafetensorsFile> got = SafetensorsFile::Open(dir + "/hf/model.safetensors");
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_EQ(got->names().size(), want->names().size());
  for (const std::string& name : want->names()) {
    const SafetensorsTensorInfo* g = got->Find(name);
    ASSERT_NE(g, nullptr) << name;
    const SafetensorsTensorInfo& w = *want->Find(name);
    ASSERT_EQ(g->data.size(), w.data.size()) << name;
    EXPECT_EQ(std::memcmp(g->data.data(), w.data.data(), w.data.size()), 0) << name;
  }
}

TEST(HfCliTest, UsageErrors) {
  const std::string dir = FreshDir("cli_usage");
  WriteConfig(dir);
  EXPECT_EQ(RunSpillway("import only_one_dir").exit_code, 2);
  EXPECT_EQ(RunSpillway("import --help").exit_code, 0);
  const std::string export_args = absl::StrCat("export ", dir, "/config.json --checkpoint ", dir,
                                               "/ckpt --output ", dir, "/out");
  Result format = RunSpillway(export_args + " --format onnx");
  EXPECT_EQ(format.exit_code, 2);
  EXPECT_NE(format.output.find("--format onnx"), std::string::npos) << format.output;
  Result dtype = RunSpillway(export_args + " --format hf --dtype fp8");
  EXPECT_EQ(dtype.exit_code, 2);
  EXPECT_NE(dtype.output.find("--dtype fp8"), std::string::npos) << dtype.output;
  EXPECT_EQ(RunSpillway(export_args + " --dtype bf16").exit_code, 2);
  Result size = RunSpillway(export_args + " --format hf --max-shard-size lots");
  EXPECT_EQ(size.exit_code, 2);
  EXPECT_NE(size.output.find("--max-shard-size lots"), std::string::npos) << size.output;
  Result missing = RunSpillway(absl::StrCat("import ", dir, "/nothing ", dir, "/ckpt"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("config.json"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace spillway
