// JSONL instructions to masked token files, compared with the same tokens built by hand from
// the tokenizer, and the batch loader over the result.
#include "engine/data/instructions.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "engine/data/batch_loader.h"
#include "engine/data/bpe_tokenizer.h"
#include "engine/data/prepare.h"
#include "engine/data/token_file.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace spillway {
namespace {

std::string MakeTempDir() {
  std::string templ = ::testing::TempDir() + "/spw_instructions_XXXXXX";
  EXPECT_NE(mkdtemp(templ.data()), nullptr);
  return templ;
}

std::string TokenizerPath(const std::string& style) {
  const char* source_dir = std::getenv("SPILLWAY_SOURCE_DIR");
  return absl::StrCat(source_dir != nullptr ? source_dir : ".", "/tests/golden/tokenizers/", style,
                      ".json");
}

void WriteText(const std::string& path, const std::string& text) {
  ASSERT_TRUE(WriteFileAtomic(path, absl::string_view(text)).ok());
}

void ExpectErrorContains(const absl::Status& status, const std::string& fragment) {
  ASSERT_FALSE(status.ok()) << "expected an error containing: " << fragment;
  EXPECT_NE(status.message().find(fragment), absl::string_view::npos) << status;
}

TEST(InstructionsTest, ParsesLinesSkipsBlanksIgnoresOtherKeys) {
  absl::StatusOr<std::vector<InstructionExample>> examples = ParseInstructions(
      "{\"prompt\": \"Q1\", \"response\": \"A1\"}\n"
      "\n"
      "  {\"id\": 7, \"response\": \"A2 \\u00e9\", \"prompt\": \"\"}\r\n"
      "{\"prompt\": \"Q3\", \"response\": \"\"}",
      "d.jsonl");
  ASSERT_TRUE(examples.ok()) << examples.status();
  ASSERT_EQ(examples->size(), 3u);
  EXPECT_EQ((*examples)[0].prompt, "Q1");
  EXPECT_EQ((*examples)[1].response, "A2 \xc3\xa9");
  EXPECT_EQ((*examples)[1].prompt, "");
  EXPECT_EQ((*examples)[1].line, 3u);
  EXPECT_EQ((*examples)[2].line, 4u);
}

TEST(InstructionsTest, ErrorsNameTheFileLineAndField) {
  const std::string good = "{\"prompt\": \"Q\", \"response\": \"A\"}\n";
  ExpectErrorContains(ParseInstructions(good + good + "{\"prompt\": \"Q\"}\n", "d.jsonl").status(),
                      "d.jsonl:3: \"response\" is missing");
  ExpectErrorContains(ParseInstructions("{\"response\": \"A\"}", "d.jsonl").status(),
                      "d.jsonl:1: \"prompt\" is missing");
  ExpectErrorContains(
      ParseInstructions(good + "{\"prompt\": 3, \"response\": \"A\"}", "d.jsonl").status(),
      "d.jsonl:2: \"prompt\" is 3");
  ExpectErrorContains(
      ParseInstructions("{\"prompt\": \"Q\", \"response\": [\"A\"]}", "d.jsonl").status(),
      "\"response\" is an array [\"A\"], not a string");
  ExpectErrorContains(ParseInstructions("[1]", "d.jsonl").status(),
                      "d.jsonl:1: the line is an array [1], not an object");
  ExpectErrorContains(ParseInstructions(good + "{\"prompt\": \"Q\",", "d.jsonl").status(),
                      "d.jsonl:2: not valid JSON");
  ExpectErrorContains(ParseInstructions("", "d.jsonl").status(), "d.jsonl: no examples");
  ExpectErrorContains(ParseInstructions("\n  \n", "d.jsonl").status(), "d.jsonl: no examples");
}

struct Example {
  std::string prompt, response;
};

const std::vector<Example>& Examples() {
  static const std::vector<Example>* examples = new std::vector<Example>{
      {"What is 2+2?", " 4"},
      {"Translate to French: cheese", " fromage"},
      {"", " An empty prompt."},
      {"Write code.\n", "def f(x):\n\treturn x  # done"},
      {"Say it twice: don't", " don't don't"},
      {"Unicode? caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87", " \xf0\x9f\x98\x80 yes"},
  };
  return *examples;
}

std::string Jsonl(const std::vector<Example>& examples) {
  std::string text;
  for (const Example& e : examples) {
    absl::StrAppend(&text, nlohmann::json{{"prompt", e.prompt}, {"response", e.response}}.dump(),
                    "\n");
  }
  return text;
}

// The tokens and mask of `examples`, built directly from the tokenizer (the byte-level one when
// `tokenizer` is null): prefix + prompt masked, response + suffix + eos not.
struct Expected {
  std::vector<uint32_t> ids;
  std::vector<uint8_t> masked;
};

Expected Build(const BpeTokenizer* tokenizer, const std::vector<Example>& examples) {
  Expected e;
  auto add = [&](const std::vector<uint32_t>& ids, uint8_t masked) {
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    e.masked.resize(e.ids.size(), masked);
  };
  auto encode = [&](const std::string& text) {
    if (tokenizer == nullptr) return ByteTokenize(text);
    absl::StatusOr<std::vector<uint32_t>> ids = tokenizer->Encode(text);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return *ids;
  };
  for (const Example& x : examples) {
    if (tokenizer != nullptr) add(tokenizer->template_prefix(), 1);
    add(encode(x.prompt), 1);
    add(encode(x.response), 0);
    if (tokenizer != nullptr) {
      add(tokenizer->template_suffix(), 0);
      add({*tokenizer->DefaultEos()}, 0);
    }
  }
  return e;
}

Expected Read(const std::string& path) {
  absl::StatusOr<TokenFile> file = TokenFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  Expected e;
  if (!file.ok()) return e;
  EXPECT_TRUE(file->has_loss_mask());
  for (size_t i = 0; i < file->size(); ++i) {
    e.ids.push_back(file->at(i));
    e.masked.push_back(file->masked(i) ? 1 : 0);
  }
  return e;
}

// "" is the byte-level tokenizer.
class PrepareInstructionsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    if (!GetParam().empty()) {
      absl::StatusOr<BpeTokenizer> t = BpeTokenizer::Load(TokenizerPath(GetParam()));
      ASSERT_TRUE(t.ok()) << t.status();
      tokenizer_ = std::make_unique<BpeTokenizer>(*std::move(t));
    }
    WriteText(dir_ + "/a.jsonl", Jsonl({Examples().begin(), Examples().begin() + 2}));
    WriteText(dir_ + "/b.jsonl", Jsonl({Examples().begin() + 2, Examples().end()}));
  }

  PrepareOptions Options() const {
    PrepareOptions o;
    o.inputs = {dir_ + "/a.jsonl", dir_ + "/b.jsonl"};
    o.output = dir_ + "/out/train.bin";
    o.tokenizer = GetParam().empty() ? "" : TokenizerPath(GetParam());
    o.format = PrepareFormat::kInstructions;
    return o;
  }

  std::string dir_;
  std::unique_ptr<BpeTokenizer> tokenizer_;
};

TEST_P(PrepareInstructionsTest, TokensAndMaskMatchTheTokenizerExampleByExample) {
  absl::StatusOr<PrepareReport> report = Prepare(Options());
  ASSERT_TRUE(report.ok()) << report.status();
  const Expected expected = Build(tokenizer_.get(), Examples());
  const Expected actual = Read(dir_ + "/out/train.bin");
  EXPECT_EQ(actual.ids, expected.ids);
  EXPECT_EQ(actual.masked, expected.masked);
  EXPECT_EQ(report->documents, Examples().size());
  EXPECT_EQ(report->train_tokens, expected.ids.size());
  uint64_t masked = 0;
  for (uint8_t m : expected.masked) masked += m;
  EXPECT_EQ(report->masked_tokens, masked);
  EXPECT_EQ(report->vocab_size, tokenizer_ ? tokenizer_->vocab_size() : 256u);
  if (tokenizer_) {
    EXPECT_EQ(report->eos_id, *tokenizer_->DefaultEos());
    // The text comes back: each example as prefix, prompt, response, EOS.
    std::string text;
    for (const Example& x : Examples()) {
      absl::StrAppend(&text, tokenizer_->Decode(tokenizer_->template_prefix()), x.prompt,
                      x.response, *tokenizer_->IdToToken(*tokenizer_->DefaultEos()));
    }
    EXPECT_EQ(tokenizer_->Decode(actual.ids), text);
  } else {
    EXPECT_EQ(report->eos_id, -1);
  }
}

TEST_P(PrepareInstructionsTest, MaskIsRightAtExampleBoundaries) {
  ASSERT_TRUE(Prepare(Options()).ok());
  const Expected actual = Read(dir_ + "/out/train.bin");
  // Walk the examples: each starts masked (its prefix or prompt) unless both are empty, its
  // response starts unmasked, and it ends with an unmasked EOS (tokenizers) or response byte.
  size_t pos = 0;
  for (const Example& x : Examples()) {
    const Expected one = Build(tokenizer_.get(), {x});
    ASSERT_LE(pos + one.ids.size(), actual.ids.size());
    const size_t prompt_len =
        static_cast<size_t>(std::count(one.masked.begin(), one.masked.end(), uint8_t{1}));
    for (size_t i = 0; i < one.ids.size(); ++i) {
      EXPECT_EQ(actual.ids[pos + i], one.ids[i]);
      EXPECT_EQ(actual.masked[pos + i], i < prompt_len ? 1 : 0)
          << "example \"" << x.prompt << "\" token " << i;
    }
    if (tokenizer_) {
      EXPECT_EQ(actual.ids[pos + one.ids.size() - 1], *tokenizer_->DefaultEos());
    }
    pos += one.ids.size();
  }
  EXPECT_EQ(pos, actual.ids.size());
}

TEST_P(PrepareInstructionsTest, LoaderTargetsAreMinusOneExactlyOnPromptTokens) {
  ASSERT_TRUE(Prepare(Options()).ok());
  const Expected expected = Build(tokenizer_.get(), Examples());
  absl::StatusOr<TokenData> data = TokenData::Open(dir_ + "/out/train.bin");
  ASSERT_TRUE(data.ok()) << data.status();
  BatchLoaderOptions options;
  options.batch_size = 1;
  options.seq_len = 7;
  absl::StatusOr<BatchLoader> loader =
      BatchLoader::Sequential(std::make_shared<const TokenData>(*std::move(data)), options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  std::vector<int32_t> inputs(7), targets(7);
  for (uint64_t w = 0; w < loader->num_windows(); ++w) {
    loader->Next(inputs.data(), targets.data());
    for (size_t t = 0; t < 7; ++t) {
      const size_t p = w * 7 + t;  // the input's position; the target is p + 1
      EXPECT_EQ(inputs[t], static_cast<int32_t>(expected.ids[p]));
      EXPECT_EQ(targets[t], expected.masked[p + 1] ? -1 : static_cast<int32_t>(expected.ids[p + 1]))
          << "position " << p + 1;
    }
  }
}

TEST_P(PrepareInstructionsTest, ValidationSplitTakesWholeExamples) {
  PrepareOptions o = Options();
  o.val_output = dir_ + "/out/val.bin";
  o.val_fraction = 0.34;  // 2 of 6 examples
  absl::StatusOr<PrepareReport> report = Prepare(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->val_documents, 2u);
  const std::vector<Example> train(Examples().begin(), Examples().end() - 2);
  const std::vector<Example> val(Examples().end() - 2, Examples().end());
  EXPECT_EQ(Read(o.output).ids, Build(tokenizer_.get(), train).ids);
  EXPECT_EQ(Read(o.output).masked, Build(tokenizer_.get(), train).masked);
  EXPECT_EQ(Read(o.val_output).ids, Build(tokenizer_.get(), val).ids);
  EXPECT_EQ(Read(o.val_output).masked, Build(tokenizer_.get(), val).masked);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, PrepareInstructionsTest,
                         ::testing::Values("gpt2_style", "llama3_style", ""),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.empty() ? std::string("byte_level") : info.param;
                         });

TEST(PrepareTextWithTokenizerTest, EachFileIsADocumentEndedByEos) {
  const std::string dir = MakeTempDir();
  const std::string a = "The first document.\nIt has two lines.\n", b = "Second: 3.14, don't!";
  WriteText(dir + "/a.txt", a);
  WriteText(dir + "/empty.txt", "");
  WriteText(dir + "/b.txt", b);
  for (const std::string style : {"gpt2_style", "llama3_style"}) {
    absl::StatusOr<BpeTokenizer> t = BpeTokenizer::Load(TokenizerPath(style));
    ASSERT_TRUE(t.ok()) << t.status();
    PrepareOptions o;
    o.inputs = {dir + "/a.txt", dir + "/empty.txt", dir + "/b.txt"};
    o.output = dir + "/" + style + ".bin";
    o.tokenizer = TokenizerPath(style);
    absl::StatusOr<PrepareReport> report = Prepare(o);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->documents, 2u);  // the empty file adds nothing
    std::vector<uint32_t> expected;
    for (const std::string& text : {a, b}) {
      absl::StatusOr<std::vector<uint32_t>> ids = t->EncodeWithTemplate(text);
      ASSERT_TRUE(ids.ok());
      expected.insert(expected.end(), ids->begin(), ids->end());
      expected.push_back(*t->DefaultEos());
    }
    absl::StatusOr<TokenFile> file = TokenFile::Open(o.output);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_FALSE(file->has_loss_mask());
    std::vector<uint32_t> actual;
    for (size_t i = 0; i < file->size(); ++i) actual.push_back(file->at(i));
    EXPECT_EQ(actual, expected);
    const std::string bos = style == "llama3_style" ? "<|begin_of_text|>" : "";
    const std::string eos = *t->IdToToken(*t->DefaultEos());
    EXPECT_EQ(t->Decode(actual), bos + a + eos + bos + b + eos);
  }
}

TEST(PrepareErrorsTest, BadInputsAreRefusedWithPathAndLine) {
  const std::string dir = MakeTempDir();
  WriteText(dir + "/good.jsonl", "{\"prompt\": \"Q\", \"response\": \"A\"}\n");
  WriteText(dir + "/bad.jsonl", "{\"prompt\": \"Q\", \"response\": \"A\"}\n{\"prompt\": \"Q\"}\n");
  WriteText(dir + "/empty.jsonl", "");
  WriteText(dir + "/no_response.jsonl", "{\"prompt\": \"Q\", \"response\": \"\"}\n");
  WriteText(dir + "/latin1.txt", "caf\xe9");
  PrepareOptions o;
  o.output = dir + "/out.bin";
  o.format = PrepareFormat::kInstructions;
  o.tokenizer = TokenizerPath("gpt2_style");
  o.inputs = {dir + "/good.jsonl", dir + "/bad.jsonl"};
  ExpectErrorContains(Prepare(o).status(), dir + "/bad.jsonl:2: \"response\" is missing");
  o.inputs = {dir + "/empty.jsonl"};
  ExpectErrorContains(Prepare(o).status(), dir + "/empty.jsonl: no examples");
  o.inputs = {dir + "/good.jsonl"};
  o.eos = "<|nope|>";
  ExpectErrorContains(Prepare(o).status(), "eos \"<|nope|>\" is not a token of");
  o.eos = "none";
  o.inputs = {dir + "/no_response.jsonl"};
  ExpectErrorContains(Prepare(o).status(), "is a masked prompt token");
  o.eos = "<|endoftext|>";
  o.tokenizer = "";
  ExpectErrorContains(Prepare(o).status(), "the byte-level tokenizer has no EOS token");
  o.tokenizer = dir + "/missing.json";
  ExpectErrorContains(Prepare(o).status(), dir + "/missing.json");
  o.tokenizer = TokenizerPath("gpt2_style");
  o.format = PrepareFormat::kText;
  o.inputs = {dir + "/latin1.txt"};
  ExpectErrorContains(Prepare(o).status(),
                      dir + "/latin1.txt: the text is not valid UTF-8 at byte 3");
  // Nothing was written by the failed calls.
  EXPECT_FALSE(ReadFileToString(dir + "/out.bin").ok());
}

}  // namespace
}  // namespace spillway
