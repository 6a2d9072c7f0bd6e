#include "engine/data/prepare.h"

#include <stdlib.h>

#include <string>
#include <vector>

#include "core/file_io.h"
#include "engine/data/token_file.h"
#include "gtest/gtest.h"

namespace spillway {
namespace {

std::string MakeTempDir() {
  std::string templ = ::testing::TempDir() + "/spw_prepare_XXXXXX";
  EXPECT_NE(mkdtemp(templ.data()), nullptr);
  return templ;
}

std::string Contents(const TokenFile& file) {
  std::vector<uint32_t> tokens(file.size());
  for (size_t i = 0; i < file.size(); ++i) tokens[i] = file.at(i);
  return ByteDetokenize(tokens);
}

void WriteText(const std::string& path, const std::string& text) {
  ASSERT_TRUE(WriteFileAtomic(path, absl::string_view(text)).ok());
}

TEST(PrepareTest, ByteTokenizerRoundTrips) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  const std::vector<uint32_t> tokens = ByteTokenize(all_bytes);
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(tokens[i], i);
  EXPECT_EQ(ByteDetokenize(tokens), all_bytes);
}

TEST(PrepareTest, TextToTokenFileAndBack) {
  const std::string dir = MakeTempDir();
  using std::string_literals::operator""s;
  const std::string a = "The quick brown fox\njumps over\n", b = "the lazy dog. \xc3\xa9\xff\x00!"s;
  ASSERT_EQ(b.size(), 19u);  // the NUL byte is part of the text
  WriteText(dir + "/a.txt", a);
  WriteText(dir + "/b.txt", b);
  absl::StatusOr<PrepareReport> report =
      PrepareTextFiles({dir + "/a.txt", dir + "/b.txt"}, dir + "/out/train.bin", "", 0.0);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->input_files, 2u);
  EXPECT_EQ(report->input_bytes, a.size() + b.size());
  EXPECT_EQ(report->train_tokens, a.size() + b.size());
  EXPECT_EQ(report->val_tokens, 0u);
  absl::StatusOr<TokenFile> file = TokenFile::Open(dir + "/out/train.bin");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->vocab_size(), 256u);
  EXPECT_EQ(file->bytes_per_token(), 2u);
  EXPECT_EQ(Contents(*file), a + b);
}

TEST(PrepareTest, ValidationSplitIsTheTail) {
  const std::string dir = MakeTempDir();
  std::string text;
  for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>('a' + i % 26));
  WriteText(dir + "/in.txt", text);
  absl::StatusOr<PrepareReport> report =
      PrepareTextFiles({dir + "/in.txt"}, dir + "/train.bin", dir + "/val.bin", 0.1);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->train_tokens, 900u);
  EXPECT_EQ(report->val_tokens, 100u);
  absl::StatusOr<TokenFile> train = TokenFile::Open(dir + "/train.bin");
  absl::StatusOr<TokenFile> val = TokenFile::Open(dir + "/val.bin");
  ASSERT_TRUE(train.ok() && val.ok());
  EXPECT_EQ(Contents(*train), text.substr(0, 900));
  EXPECT_EQ(Contents(*val), text.substr(900));
}

TEST(PrepareTest, ErrorsNameThePath) {
  const std::string dir = MakeTempDir();
  WriteText(dir + "/in.txt", "some text");
  WriteText(dir + "/empty.txt", "");
  auto expect_error = [](const absl::StatusOr<PrepareReport>& report, const std::string& fragment) {
    ASSERT_FALSE(report.ok());
    EXPECT_NE(report.status().message().find(fragment), absl::string_view::npos) << report.status();
  };
  expect_error(PrepareTextFiles({dir + "/in.txt", dir + "/missing.txt"}, dir + "/o.bin", "", 0),
               dir + "/missing.txt");
  expect_error(PrepareTextFiles({dir + "/empty.txt"}, dir + "/o.bin", "", 0), "empty");
  expect_error(PrepareTextFiles({dir}, dir + "/o.bin", "", 0), dir);  // a directory
  // The parent of the output is a regular file, so it cannot be created.
  expect_error(PrepareTextFiles({dir + "/in.txt"}, dir + "/in.txt/o.bin", "", 0),
               dir + "/in.txt/o.bin");
  expect_error(PrepareTextFiles({dir + "/in.txt"}, dir + "/o.bin", dir + "/v.bin", 1.0),
               "val_fraction");
  expect_error(PrepareTextFiles({dir + "/in.txt"}, dir + "/o.bin", dir + "/v.bin", 0.01),
               "validation split empty");
  expect_error(PrepareTextFiles({dir + "/in.txt"}, dir + "/o.bin", dir + "/o.bin", 0.5), "same");
  expect_error(PrepareTextFiles({}, dir + "/o.bin", "", 0), "no input");
  // Nothing was written by the failed calls.
  EXPECT_FALSE(ReadFileToString(dir + "/o.bin").ok());
}

}  // namespace
}  // namespace spillway
