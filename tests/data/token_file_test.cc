#include "engine/data/token_file.h"

#include <stdlib.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "engine/data/token_data.h"
#include "gtest/gtest.h"

namespace spillway {
namespace {

std::string MakeTempDir() {
  std::string templ = ::testing::TempDir() + "/spw_token_file_XXXXXX";
  EXPECT_NE(mkdtemp(templ.data()), nullptr);
  return templ;
}

std::string ReadAll(const std::string& path) {
  absl::StatusOr<std::string> data = ReadFileToString(path);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : std::string();
}

void WriteRaw(const std::string& path, const std::string& bytes) {
  ASSERT_TRUE(WriteFileAtomic(path, absl::string_view(bytes)).ok());
}

void ExpectOpenFails(const std::string& path, const std::string& fragment) {
  absl::StatusOr<TokenFile> file = TokenFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find(path), absl::string_view::npos) << file.status();
  EXPECT_NE(file.status().message().find(fragment), absl::string_view::npos) << file.status();
}

TEST(TokenFileTest, RoundTripUint16) {
  const std::string path = MakeTempDir() + "/t16.bin";
  const std::vector<uint32_t> tokens = {0, 1, 65535, 300, 7, 65535, 12345};
  ASSERT_TRUE(WriteTokenFile(path, tokens, 65536).ok());
  // The header, decoded by hand.
  const std::string raw = ReadAll(path);
  ASSERT_EQ(raw.size(), 64 + tokens.size() * 2);
  EXPECT_EQ(raw.substr(0, 8), "SPWTOKEN");
  EXPECT_EQ(raw[8], 1);   // version
  EXPECT_EQ(raw[12], 2);  // bytes_per_token
  EXPECT_EQ(raw[16], 7);  // token_count
  EXPECT_EQ(raw[26], 1);  // vocab_size 65536 = 0x00010000
  EXPECT_EQ(raw.substr(28, 36), std::string(36, '\0'));
  EXPECT_EQ(static_cast<unsigned char>(raw[64 + 2 * 3]), 300 & 0xff);
  EXPECT_EQ(static_cast<unsigned char>(raw[64 + 2 * 3 + 1]), 300 >> 8);

  absl::StatusOr<TokenFile> file = TokenFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), tokens.size());
  EXPECT_EQ(file->vocab_size(), 65536u);
  EXPECT_EQ(file->bytes_per_token(), 2u);
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(file->at(i), tokens[i]);
}

TEST(TokenFileTest, RoundTripUint32AndMove) {
  const std::string path = MakeTempDir() + "/t32.bin";
  std::vector<uint32_t> tokens;
  for (uint32_t i = 0; i < 1000; ++i) tokens.push_back((i * 2654435761u) % 100003);
  ASSERT_TRUE(WriteTokenFile(path, tokens, 100003).ok());
  EXPECT_EQ(ReadAll(path).size(), 64 + tokens.size() * 4);
  absl::StatusOr<TokenFile> opened = TokenFile::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  TokenFile file = std::move(opened).value();
  TokenFile moved = std::move(file);
  EXPECT_EQ(moved.bytes_per_token(), 4u);
  EXPECT_EQ(moved.vocab_size(), 100003u);
  ASSERT_EQ(moved.size(), tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(moved.at(i), tokens[i]);
  // No temporary file is left behind.
  EXPECT_FALSE(ReadFileToString(path + ".tmp").ok());
}

TEST(TokenFileTest, ByteTokenFileMatchesGenericWriter) {
  const std::string dir = MakeTempDir();
  const std::string text = "hello \xff\x01 world";
  std::vector<uint32_t> tokens;
  for (unsigned char c : text) tokens.push_back(c);
  ASSERT_TRUE(WriteByteTokenFile(dir + "/a.bin", text).ok());
  ASSERT_TRUE(WriteTokenFile(dir + "/b.bin", tokens, 256).ok());
  EXPECT_EQ(ReadAll(dir + "/a.bin"), ReadAll(dir + "/b.bin"));
}

TEST(TokenFileTest, WriteRejectsBadTokensAndUnwritableDir) {
  const std::string dir = MakeTempDir();
  const std::vector<uint32_t> tokens = {1, 2, 10};
  absl::Status status = WriteTokenFile(dir + "/bad.bin", tokens, 10);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("position 2"), absl::string_view::npos) << status;
  EXPECT_FALSE(ReadFileToString(dir + "/bad.bin").ok());

  const std::string unwritable = dir + "/no/such/dir/out.bin";
  status = WriteTokenFile(unwritable, tokens, 100);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find(unwritable), absl::string_view::npos) << status;

  EXPECT_FALSE(WriteTokenFile(dir + "/zero.bin", tokens, 0).ok());
}

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    good_path_ = dir_ + "/good.bin";
    ASSERT_TRUE(WriteTokenFile(good_path_, std::vector<uint32_t>{5, 6, 7, 8}, 9).ok());
    good_ = ReadAll(good_path_);
  }
  // Writes `bytes` to a fresh file and returns its path.
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    WriteRaw(path, bytes);
    return path;
  }
  std::string dir_, good_path_, good_;
};

TEST_F(CorruptionTest, GoodFileOpens) { EXPECT_TRUE(TokenFile::Open(good_path_).ok()); }

TEST_F(CorruptionTest, BadMagic) {
  std::string bytes = good_;
  bytes[0] = 'X';
  ExpectOpenFails(Write("magic.bin", bytes), "bad magic");
}

TEST_F(CorruptionTest, BadVersion) {
  std::string bytes = good_;
  bytes[8] = 3;
  ExpectOpenFails(Write("version.bin", bytes), "unsupported version 3");
}

TEST_F(CorruptionTest, BadBytesPerToken) {
  std::string bytes = good_;
  bytes[12] = 3;
  ExpectOpenFails(Write("bpt.bin", bytes), "bytes_per_token 3");
}

TEST_F(CorruptionTest, Truncated) {
  const std::string path = Write("trunc.bin", good_.substr(0, good_.size() - 1));
  ExpectOpenFails(path, "should be 64 + 4 * 2 = 72 bytes, but it is 71 bytes");
  ExpectOpenFails(path, "regenerate with spillway prepare");
  ExpectOpenFails(Write("header.bin", good_.substr(0, 10)), "smaller than the 64-byte header");
  ExpectOpenFails(Write("empty.bin", ""), "0 bytes");
}

TEST_F(CorruptionTest, ExtraTrailingBytes) {
  ExpectOpenFails(Write("extra.bin", good_ + "xy"), "but it is 74 bytes");
}

TEST_F(CorruptionTest, TokenOutOfVocab) {
  std::string bytes = good_;
  bytes[64 + 2 * 2] = 9;  // token 2 := 9 == vocab_size
  ExpectOpenFails(Write("vocab.bin", bytes), "token 9 at position 2 is >= vocab_size 9");
}

TEST_F(CorruptionTest, MissingFileAndDirectory) {
  ExpectOpenFails(dir_ + "/missing.bin", "No such file");
  absl::StatusOr<TokenFile> file = TokenFile::Open(dir_ + "/missing.bin");
  EXPECT_TRUE(absl::IsNotFound(file.status()));
  ExpectOpenFails(dir_, "directory");
}

// Token i of the masked fixtures is masked when i % 3 == 0 or i == 12 (13 tokens: the mask
// has a partial last byte).
std::vector<uint8_t> MaskPattern(size_t n) {
  std::vector<uint8_t> masked(n);
  for (size_t i = 0; i < n; ++i) masked[i] = (i % 3 == 0 || i == 12) ? 1 : 0;
  return masked;
}

TEST(TokenFileTest, LossMaskRoundTripsAsVersion2) {
  const std::string path = MakeTempDir() + "/masked.bin";
  std::vector<uint32_t> tokens(13);
  std::iota(tokens.begin(), tokens.end(), 100u);
  const std::vector<uint8_t> masked = MaskPattern(13);
  ASSERT_TRUE(WriteTokenFile(path, tokens, 70000, masked).ok());  // 4-byte tokens
  const std::string raw = ReadAll(path);
  ASSERT_EQ(raw.size(), 64 + 13 * 4 + 2);
  EXPECT_EQ(raw[8], 2);   // version
  EXPECT_EQ(raw[28], 1);  // flags: loss mask
  // Bits 0, 3, 6 of byte 0; bits 9 - 8 = 1 and 12 - 8 = 4 of byte 1; no bit past token 12.
  EXPECT_EQ(static_cast<unsigned char>(raw[64 + 52]), 0b01001001);
  EXPECT_EQ(static_cast<unsigned char>(raw[64 + 53]), 0b00010010);
  absl::StatusOr<TokenFile> file = TokenFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->version(), 2u);
  EXPECT_TRUE(file->has_loss_mask());
  for (size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_EQ(file->at(i), tokens[i]);
    EXPECT_EQ(file->masked(i), masked[i] != 0) << i;
  }
  // A file without a mask is still version 1, and nothing in it is masked.
  const std::string plain = path + ".plain";
  ASSERT_TRUE(WriteTokenFile(plain, tokens, 70000).ok());
  EXPECT_EQ(ReadAll(plain)[8], 1);
  absl::StatusOr<TokenFile> plain_file = TokenFile::Open(plain);
  ASSERT_TRUE(plain_file.ok()) << plain_file.status();
  EXPECT_FALSE(plain_file->has_loss_mask());
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_FALSE(plain_file->masked(i));
  // The mask must have one entry per token.
  absl::Status status = WriteTokenFile(path, tokens, 70000, std::vector<uint8_t>(12));
  EXPECT_NE(status.message().find("12 mask entries for 13 tokens"), absl::string_view::npos)
      << status;
}

TEST(TokenFileTest, Version2WithoutMaskFlagReads) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteTokenFile(dir + "/v1.bin", std::vector<uint32_t>{1, 2, 3}, 4).ok());
  std::string bytes = ReadAll(dir + "/v1.bin");
  bytes[8] = 2;
  WriteRaw(dir + "/v2.bin", bytes);
  absl::StatusOr<TokenFile> file = TokenFile::Open(dir + "/v2.bin");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE(file->has_loss_mask());
  EXPECT_EQ(file->at(2), 3u);
}

class MaskCorruptionTest : public CorruptionTest {
 protected:
  void SetUp() override {
    CorruptionTest::SetUp();
    masked_path_ = dir_ + "/masked.bin";
    ASSERT_TRUE(
        WriteTokenFile(masked_path_, std::vector<uint32_t>(13, 5), 9, MaskPattern(13)).ok());
    masked_ = ReadAll(masked_path_);
    ASSERT_EQ(masked_.size(), 64u + 26 + 2);
  }
  std::string masked_path_, masked_;
};

TEST_F(MaskCorruptionTest, GoodFileOpens) { EXPECT_TRUE(TokenFile::Open(masked_path_).ok()); }

TEST_F(MaskCorruptionTest, MaskTruncatedOrMissing) {
  ExpectOpenFails(Write("short.bin", masked_.substr(0, masked_.size() - 1)),
                  "should be 64 + 13 * 2 + 2 = 92 bytes, but it is 91 bytes");
  ExpectOpenFails(Write("nomask.bin", masked_.substr(0, 64 + 26)), "and a loss mask");
  // Version 1 has no flags: the reserved word is ignored, so the mask bytes are extra.
  std::string v1 = masked_;
  v1[8] = 1;
  ExpectOpenFails(Write("v1.bin", v1), "but it is 92 bytes");
}

TEST_F(MaskCorruptionTest, UnknownFlagsRefused) {
  std::string bytes = masked_;
  bytes[28] = 3;
  ExpectOpenFails(Write("flags.bin", bytes), "unknown flags 0x3");
}

TEST_F(MaskCorruptionTest, BitsPastTheLastTokenRefused) {
  std::string bytes = masked_;
  bytes[bytes.size() - 1] |= static_cast<char>(0x20);  // token 13 does not exist
  ExpectOpenFails(Write("tail.bin", bytes), "bits set past token 12");
}

TEST(TokenDataTest, MaskFromFileAndVectorAgree) {
  const std::string path = MakeTempDir() + "/m.bin";
  const std::vector<uint32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9};
  ASSERT_TRUE(WriteTokenFile(path, tokens, 10, MaskPattern(13)).ok());
  absl::StatusOr<TokenData> from_file = TokenData::Open(path);
  absl::StatusOr<TokenData> from_vector = TokenData::FromVector(tokens, 10, "v", MaskPattern(13));
  ASSERT_TRUE(from_file.ok() && from_vector.ok());
  EXPECT_TRUE(from_file->has_loss_mask());
  EXPECT_TRUE(from_vector->has_loss_mask());
  for (size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_EQ(from_file->masked(i), from_vector->masked(i)) << i;
    EXPECT_EQ(from_file->at(i), from_vector->at(i));
  }
  EXPECT_FALSE(TokenData::FromVector(tokens, 10, "v", std::vector<uint8_t>(3)).ok());
}

TEST(TokenDataTest, FileAndVectorAgree) {
  const std::string path = MakeTempDir() + "/d.bin";
  const std::vector<uint32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6};
  ASSERT_TRUE(WriteTokenFile(path, tokens, 10).ok());
  absl::StatusOr<TokenData> from_file = TokenData::Open(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  absl::StatusOr<TokenData> from_vector =
      TokenData::FromVector(tokens, 10, "synthetic train split");
  ASSERT_TRUE(from_vector.ok()) << from_vector.status();
  EXPECT_EQ(from_file->name(), path);
  EXPECT_EQ(from_vector->name(), "synthetic train split");
  ASSERT_EQ(from_file->size(), from_vector->size());
  EXPECT_EQ(from_file->vocab_size(), from_vector->vocab_size());
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(from_file->at(i), from_vector->at(i));

  absl::StatusOr<TokenData> bad = TokenData::FromVector({1, 10}, 10, "synthetic val split");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("synthetic val split"), absl::string_view::npos);
  EXPECT_NE(bad.status().message().find("position 1"), absl::string_view::npos);
}

}  // namespace
}  // namespace spillway
