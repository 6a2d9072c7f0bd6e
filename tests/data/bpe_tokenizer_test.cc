// The parts of the byte-level BPE tokenizer on small hand-made inputs, and its errors.
#include "engine/data/bpe_tokenizer.h"

#include <set>
#include <string>
#include <vector>

#include "engine/data/byte_level.h"
#include "engine/data/pre_tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace spillway {
namespace {

using nlohmann::json;

TEST(ByteLevelTest, AlphabetIsGpt2s) {
  EXPECT_EQ(byte_level::ByteToChar(' '), "\xc4\xa0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_level::ByteToChar('\n'), "\xc4\x8a");  // U+010A 'Ċ'
  EXPECT_EQ(byte_level::ByteToChar('a'), "a");
  EXPECT_EQ(byte_level::ByteToChar(0xE9), "\xc3\xa9");  // printable Latin-1 stays itself
  EXPECT_EQ(byte_level::ByteToChar(0xAD), "\xc5\x83");  // soft hyphen: the last, U+0143
  std::set<std::string> chars;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    chars.insert(std::string(byte_level::ByteToChar(static_cast<uint8_t>(b))));
    all.push_back(static_cast<char>(b));
  }
  EXPECT_EQ(chars.size(), 256u);
  std::string encoded, decoded;
  byte_level::AppendEncoded(all, &encoded);
  byte_level::AppendDecoded(encoded, &decoded);
  EXPECT_EQ(decoded, all);
  // A token with a character outside the alphabet decodes to its own bytes.
  decoded.clear();
  byte_level::AppendDecoded("<|a b|>", &decoded);
  EXPECT_EQ(decoded, "<|a b|>");
}

std::vector<std::string> Pieces(const PreTokenizer& pre, absl::string_view text) {
  std::vector<std::string> pieces;
  absl::Status status = pre.Run(text, [&](absl::string_view piece) {
    pieces.emplace_back(piece);
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok()) << status;
  return pieces;
}

TEST(PreTokenizerTest, SplitBehaviorsAsHuggingFaceDocumentsThem) {
  // The example of HF's Split documentation: "the-final--countdown" split on "-".
  using V = std::vector<std::string>;
  const std::pair<SplitBehavior, V> cases[] = {
      {SplitBehavior::kRemoved, V{"the", "final", "countdown"}},
      {SplitBehavior::kIsolated, V{"the", "-", "final", "-", "-", "countdown"}},
      {SplitBehavior::kMergedWithPrevious, V{"the-", "final-", "-", "countdown"}},
      {SplitBehavior::kMergedWithNext, V{"the", "-final", "-", "-countdown"}},
      {SplitBehavior::kContiguous, V{"the", "-", "final", "--", "countdown"}},
  };
  for (const auto& [behavior, expected] : cases) {
    for (bool literal : {false, true}) {
      absl::StatusOr<Regex> regex = Regex::Compile("-", literal);
      ASSERT_TRUE(regex.ok()) << regex.status();
      PreTokenizer pre;
      pre.AddSplit(*std::move(regex), behavior, /*invert=*/false);
      EXPECT_EQ(Pieces(pre, "the-final--countdown"), expected) << static_cast<int>(behavior);
    }
  }
  // invert: the words are the delimiters, so Removed keeps the dashes.
  absl::StatusOr<Regex> words = Regex::Compile("[a-z]+");
  ASSERT_TRUE(words.ok());
  PreTokenizer inverted;
  inverted.AddSplit(*std::move(words), SplitBehavior::kRemoved, /*invert=*/true);
  EXPECT_EQ(Pieces(inverted, "the-final--countdown"), (V{"the", "final", "countdown"}));
}

TEST(PreTokenizerTest, ByteLevelGpt2PatternAndPrefixSpace) {
  PreTokenizer pre;
  ASSERT_TRUE(pre.AddByteLevel(/*add_prefix_space=*/true, /*use_regex=*/true).ok());
  // "Ġ" is the space; the pattern keeps a space with the word after it, and a run of spaces
  // before a word gives all but the last to a piece of its own.
  EXPECT_EQ(Pieces(pre, "I'll  go 12345!"),
            (std::vector<std::string>{"ĠI", "'ll", "Ġ", "Ġgo", "Ġ12345", "!"}));
}

TEST(PreTokenizerTest, UnicodeClassesNeedUcp) {
  // \p{L} and \s in UTF mode with Unicode properties: "é" is a letter, U+3000 a space.
  absl::StatusOr<Regex> regex = Regex::Compile(R"(\p{L}+|\s+)");
  ASSERT_TRUE(regex.ok());
  PreTokenizer pre;
  pre.AddSplit(*std::move(regex), SplitBehavior::kRemoved, /*invert=*/false);
  EXPECT_EQ(Pieces(pre,
                   "caf\xc3\xa9\xe3\x80\x80"
                   "42"),
            (std::vector<std::string>{"42"}));
}

// A small valid tokenizer.json: letters a, b, c, the space 'Ġ', merges "a b" then "ab c", and
// the special token <eos> (id 6).
json SmallTokenizer() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 6, "content": "<eos>", "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false, "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                      "use_regex": true},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false,
                       "use_regex": true},
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null,
              "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
              "byte_fallback": false, "ignore_merges": false,
              "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5},
              "merges": ["a b", "ab c"]}
  })");
}

BpeTokenizer Make(const json& j) {
  absl::StatusOr<BpeTokenizer> t = BpeTokenizer::FromJson(j.dump(), "small.json");
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

std::vector<uint32_t> Encode(const BpeTokenizer& t, absl::string_view text) {
  absl::StatusOr<std::vector<uint32_t>> ids = t.Encode(text);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<uint32_t>{};
}

TEST(BpeTokenizerTest, MergesInRankOrder) {
  const BpeTokenizer t = Make(SmallTokenizer());
  EXPECT_EQ(t.vocab_size(), 7u);
  using V = std::vector<uint32_t>;
  EXPECT_EQ(Encode(t, "abc"), (V{5}));
  EXPECT_EQ(Encode(t, "abc ab ba"), (V{5, 3, 4, 3, 1, 0}));
  EXPECT_EQ(Encode(t, "abab<eos>cab"), (V{4, 4, 6, 2, 4}));
  EXPECT_EQ(Encode(t, "xyz"), V{});  // characters outside the vocabulary, no unk_token: dropped
  EXPECT_EQ(t.Decode(V{5, 3, 4, 6, 99}), "abc ab<eos>");  // unknown id 99 skipped
  EXPECT_EQ(t.DefaultEos(), 6u);
  EXPECT_EQ(t.TokenToId("<eos>"), 6u);
  EXPECT_EQ(t.TokenToId("Ġ"), 3u);
}

TEST(BpeTokenizerTest, MergesAsPairsEqualMergesAsStrings) {
  json pairs = SmallTokenizer();
  pairs["model"]["merges"] = json::parse(R"([["a", "b"], ["ab", "c"]])");
  const BpeTokenizer a = Make(SmallTokenizer()), b = Make(pairs);
  for (const char* text : {"abc", "aabbcc abcabc", " cab", "bac"}) {
    EXPECT_EQ(Encode(a, text), Encode(b, text)) << text;
  }
}

TEST(BpeTokenizerTest, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  // "bc" is in the vocabulary but no merge makes it: BPE gives b, c; ignore_merges gives bc.
  json j = SmallTokenizer();
  j["model"]["vocab"]["bc"] = 7;
  EXPECT_EQ(Encode(Make(j), "bc"), (std::vector<uint32_t>{1, 2}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(Encode(Make(j), "bc"), (std::vector<uint32_t>{7}));
}

TEST(BpeTokenizerTest, UnkTokenAndFuseUnk) {
  json j = SmallTokenizer();
  j["model"]["vocab"]["<unk>"] = 7;
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(Encode(Make(j), "axyb"), (std::vector<uint32_t>{0, 7, 7, 1}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(Encode(Make(j), "axyb"), (std::vector<uint32_t>{0, 7, 1}));
}

TEST(BpeTokenizerTest, TemplateProcessingGivesPrefixAndSuffix) {
  json j = SmallTokenizer();
  j["added_tokens"].push_back({{"id", 7}, {"content", "<bos>"}, {"special", true}});
  j["post_processor"] = json::parse(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel"},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<eos>", "type_id": 0}}],
       "pair": [],
       "special_tokens": {"<bos>": {"id": "<bos>", "ids": [7], "tokens": ["<bos>"]},
                          "<eos>": {"id": "<eos>", "ids": [6], "tokens": ["<eos>"]}}}]})");
  const BpeTokenizer t = Make(j);
  absl::StatusOr<std::vector<uint32_t>> ids = t.EncodeWithTemplate("ab");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<uint32_t>{7, 4, 6}));
}

TEST(BpeTokenizerTest, InvalidUtf8IsRefusedWithItsOffset) {
  const BpeTokenizer t = Make(SmallTokenizer());
  absl::StatusOr<std::vector<uint32_t>> ids = t.Encode("ab\xff");
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.status().message().find("not valid UTF-8 at byte 2"), absl::string_view::npos)
      << ids.status();
}

void ExpectError(const std::string& text, const std::string& fragment) {
  absl::StatusOr<BpeTokenizer> t = BpeTokenizer::FromJson(text, "dir/tokenizer.json");
  ASSERT_FALSE(t.ok()) << "expected an error containing: " << fragment;
  EXPECT_TRUE(absl::IsInvalidArgument(t.status())) << t.status();
  EXPECT_EQ(t.status().message().find("dir/tokenizer.json: "), 0u) << t.status();
  EXPECT_NE(t.status().message().find(fragment), absl::string_view::npos) << t.status();
}

void ExpectError(const json& j, const std::string& fragment) { ExpectError(j.dump(), fragment); }
void ExpectError(const char* text, const std::string& fragment) {
  ExpectError(std::string(text), fragment);
}

TEST(BpeTokenizerErrorsTest, UnsupportedModelTypes) {
  for (const char* type : {"Unigram", "WordPiece", "WordLevel"}) {
    json j = SmallTokenizer();
    j["model"]["type"] = type;
    ExpectError(j, absl::StrCat("model.type is \"", type,
                                "\"; spillway reads byte-level BPE tokenizers only"));
  }
  json j = SmallTokenizer();
  j["model"].erase("type");
  ExpectError(j, "model.type: is missing");
}

TEST(BpeTokenizerErrorsTest, MalformedJson) {
  std::string text = SmallTokenizer().dump();
  ExpectError(text.substr(0, text.size() / 2), "not valid JSON");
  ExpectError("", "not valid JSON");
  ExpectError("[1, 2]", "the top level is an array");
  ExpectError(R"({"model": {"type": "BPE", "vocab": {"a": 0, "a": 1}, "merges": []}})",
              "duplicate key");
}

TEST(BpeTokenizerErrorsTest, MissingOrBadMerges) {
  json j = SmallTokenizer();
  j["model"].erase("merges");
  ExpectError(j, "model.merges: is missing");
  j["model"]["merges"] = {"a b", "ab x"};
  ExpectError(j, "model.merges[1] (\"ab\", \"x\"): \"x\" is not in model.vocab");
  j["model"]["merges"] = {"a b c"};
  ExpectError(j, "model.merges[0]: is \"a b c\" (a string); a merge string is two tokens");
  j["model"]["merges"] = json::parse("[[\"a\"]]");
  ExpectError(j, "model.merges[0]: is an array");
  j = SmallTokenizer();
  j["model"].erase("vocab");
  ExpectError(j, "model.vocab: is missing");
}

TEST(BpeTokenizerErrorsTest, UnsupportedPartsNameTheirField) {
  json j = SmallTokenizer();
  j["normalizer"] = {{"type", "NFC"}};
  ExpectError(j, "normalizer.type is \"NFC\"; spillway reads tokenizers without a normalizer");
  j = SmallTokenizer();
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Whitespace"}, {"type": "ByteLevel"}]})");
  ExpectError(j, "pre_tokenizer.pretokenizers[0].type is \"Whitespace\"");
  j = SmallTokenizer();
  j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"Regex": "\\s+"},
      "behavior": "Isolated", "invert": false})");
  ExpectError(j, "pre_tokenizer: has no ByteLevel step");
  j["pre_tokenizer"]["pattern"]["Regex"] = "(unclosed";
  ExpectError(j, "pre_tokenizer.pattern.Regex: regex does not compile at offset");
  j = SmallTokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  ExpectError(j, "decoder.type is \"WordPiece\"");
  j = SmallTokenizer();
  j["post_processor"] = {{"type", "BertProcessing"}};
  ExpectError(j, "post_processor.type is \"BertProcessing\"");
  j = SmallTokenizer();
  j["model"]["dropout"] = 0.1;
  ExpectError(j, "model.dropout: is 0.1");
  j = SmallTokenizer();
  j["model"]["byte_fallback"] = true;
  ExpectError(j, "model.byte_fallback: is true");
  j = SmallTokenizer();
  j["added_tokens"][0]["lstrip"] = true;
  ExpectError(j, "added_tokens[0].lstrip: is true");
  j = SmallTokenizer();
  j["model"]["unk_token"] = "<unk>";
  ExpectError(j, "model.unk_token \"<unk>\" is not in model.vocab");
}

TEST(BpeTokenizerErrorsTest, LoadNamesAMissingFile) {
  absl::StatusOr<BpeTokenizer> t = BpeTokenizer::Load("/nonexistent/tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("/nonexistent/tokenizer.json"), absl::string_view::npos);
}

}  // namespace
}  // namespace spillway
