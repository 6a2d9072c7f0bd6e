// Our byte-level BPE against Hugging Face `tokenizers`, token for token: the tokenizers and the
// reference ids in tests/golden/tokenizers/ come from tests/golden/make_tokenizer_reference.py
// (two tokenizers trained on tests/golden/tokenizer_corpus.txt: GPT-2 style and Llama-3 style).
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_io.h"
#include "engine/data/bpe_tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace spillway {
namespace {

std::string GoldenPath(const std::string& file) {
  const char* source_dir = std::getenv("SPILLWAY_SOURCE_DIR");
  return absl::StrCat(source_dir != nullptr ? source_dir : ".", "/tests/golden/tokenizers/", file);
}

std::vector<uint32_t> Ids(const nlohmann::json& array) {
  return array.get<std::vector<uint32_t>>();
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::Load(GoldenPath(GetParam() + ".json"));
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_.emplace(*std::move(tokenizer));
    absl::StatusOr<std::string> text = ReadFileToString(GoldenPath(GetParam() + "_reference.json"));
    ASSERT_TRUE(text.ok()) << text.status();
    reference_ = nlohmann::json::parse(*text);
    ASSERT_GT(reference_["cases"].size(), 100u);
  }

  std::optional<BpeTokenizer> tokenizer_;
  nlohmann::json reference_;
};

TEST_P(GoldenTest, VocabularyAndSpecialTokens) {
  EXPECT_EQ(tokenizer_->vocab_size(), reference_["vocab_size"].get<uint32_t>());
  for (const auto& [content, id] : reference_["special_tokens"].items()) {
    EXPECT_EQ(tokenizer_->TokenToId(content), id.get<uint32_t>()) << content;
    ASSERT_NE(tokenizer_->IdToToken(id.get<uint32_t>()), nullptr);
    EXPECT_EQ(*tokenizer_->IdToToken(id.get<uint32_t>()), content);
  }
  EXPECT_TRUE(tokenizer_->DefaultEos().has_value());
}

TEST_P(GoldenTest, EncodeMatchesHuggingFaceTokenForToken) {
  size_t tokens = 0;
  for (const nlohmann::json& c : reference_["cases"]) {
    const std::string text = c["text"].get<std::string>();
    absl::StatusOr<std::vector<uint32_t>> ids = tokenizer_->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, Ids(c["ids"]))
        << "text: \"" << text << "\"\n ours: " << absl::StrJoin(*ids, " ")
        << "\n   hf: " << absl::StrJoin(Ids(c["ids"]), " ");
    absl::StatusOr<std::vector<uint32_t>> with_template = tokenizer_->EncodeWithTemplate(text);
    ASSERT_TRUE(with_template.ok()) << with_template.status();
    EXPECT_EQ(*with_template, Ids(c["ids_with_template"])) << "text: \"" << text << "\"";
    tokens += ids->size();
  }
  EXPECT_GT(tokens, 5000u);
}

TEST_P(GoldenTest, DecodeRoundTripsAndMatchesHuggingFace) {
  for (const nlohmann::json& c : reference_["cases"]) {
    const std::vector<uint32_t> ids = Ids(c["ids"]);
    const std::string decoded = tokenizer_->Decode(ids);
    EXPECT_EQ(decoded, c["text"].get<std::string>());
    EXPECT_EQ(decoded, c["decoded"].get<std::string>());
  }
}

TEST_P(GoldenTest, EveryTokenDecodesToItsBytesAndBack) {
  // Single tokens of the vocabulary: decode gives the bytes; where those are valid UTF-8 and a
  // whole pre-token, encoding them again need not give the same token (merges decide), but the
  // round trip text -> ids -> text always holds.
  for (uint32_t id = 0; id < tokenizer_->vocab_size(); ++id) {
    const std::vector<uint32_t> one = {id};
    const std::string bytes = tokenizer_->Decode(one);
    ASSERT_FALSE(bytes.empty()) << "id " << id;
    absl::StatusOr<std::vector<uint32_t>> ids = tokenizer_->Encode(bytes);
    if (!ids.ok()) continue;  // a token that ends inside a UTF-8 character
    EXPECT_EQ(tokenizer_->Decode(*ids), bytes) << "id " << id;
  }
}

INSTANTIATE_TEST_SUITE_P(Styles, GoldenTest, ::testing::Values("gpt2_style", "llama3_style"));

}  // namespace
}  // namespace spillway
