// A byte-level BPE tokenizer read from a Hugging Face tokenizer.json, encoding exactly as HF
// `tokenizers` does (tests/data/bpe_tokenizer_golden_test.cc holds it to reference ids).
//
// Read: model.type "BPE" (vocab; merges as "a b" strings or [a, b] pairs; ignore_merges;
// unk_token, fuse_unk); added_tokens; no normalizer; a pre_tokenizer of ByteLevel (GPT-2 style,
// use_regex) or Sequence[Split(Regex or String, any behavior, invert), ..., ByteLevel] (Llama-3
// style), with the regex taken from the file; the ByteLevel decoder; a post_processor of
// ByteLevel (offsets only), TemplateProcessing (its "single" template) or a Sequence of these.
// truncation and padding are ignored: spillway never cuts or pads. Anything else (WordPiece,
// Unigram, a normalizer, another pre-tokenizer, BPE dropout, byte_fallback, added tokens with
// lstrip/rstrip/single_word) is refused with the JSON field path named. docs/data.md has more.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/data/added_tokens.h"
#include "engine/data/bpe_model.h"
#include "engine/data/pre_tokenizer.h"

namespace spillway {

class BpeTokenizer {
 public:
  // Reads a tokenizer.json. Errors start with the path and name the JSON field at fault.
  static absl::StatusOr<BpeTokenizer> Load(const std::string& path);
  // The same from the file's text; `name` starts error messages.
  static absl::StatusOr<BpeTokenizer> FromJson(absl::string_view json, absl::string_view name);

  BpeTokenizer(BpeTokenizer&&) = default;
  BpeTokenizer& operator=(BpeTokenizer&&) = default;

  // The ids of `text` as HF's encode(text, add_special_tokens=False): added tokens first, then
  // pre-tokenization and BPE of the text between them. InvalidArgument (with the byte offset)
  // if `text` is not valid UTF-8.
  absl::StatusOr<std::vector<uint32_t>> Encode(absl::string_view text) const;
  // With the post-processor's template around it, as HF's encode(text) (add_special_tokens):
  // template_prefix() + Encode(text) + template_suffix().
  absl::StatusOr<std::vector<uint32_t>> EncodeWithTemplate(absl::string_view text) const;

  // The text of `ids` as HF's decode(ids, skip_special_tokens=False), but as raw bytes: where
  // the ids cut a UTF-8 character, HF gives U+FFFD and this gives the bytes. Ids that the
  // tokenizer does not have are skipped, as in HF. Decode(Encode(text)) == text.
  std::string Decode(std::span<const uint32_t> ids) const;

  // One past the largest id of the vocabulary and the added tokens.
  uint32_t vocab_size() const { return vocab_size_; }
  // The id of a token (an added token's content, or a vocabulary entry in the byte-level
  // alphabet, e.g. "Ġthe"), if it has one.
  std::optional<uint32_t> TokenToId(absl::string_view token) const;
  // The token of an id (added tokens first), or nullptr.
  const std::string* IdToToken(uint32_t id) const;

  // The end-of-text token: the special added token whose content comes first in
  // kEosCandidates; none if there is none.
  std::optional<uint32_t> DefaultEos() const;

  const std::vector<uint32_t>& template_prefix() const { return template_prefix_; }
  const std::vector<uint32_t>& template_suffix() const { return template_suffix_; }
  const AddedTokens& added_tokens() const { return added_; }
  const BpeModel& model() const { return model_; }
  const std::string& name() const { return name_; }

 private:
  friend class TokenizerJsonReader;
  BpeTokenizer() = default;

  std::string name_;
  BpeModel model_;
  AddedTokens added_;
  PreTokenizer pre_tokenizer_;
  std::vector<uint32_t> template_prefix_;
  std::vector<uint32_t> template_suffix_;
  uint32_t vocab_size_ = 0;
};

// The contents DefaultEos() looks for, in this order of preference.
inline constexpr absl::string_view kEosCandidates[] = {"<|endoftext|>", "<|end_of_text|>", "</s>",
                                                       "<eos>", "<|eos|>"};

}  // namespace spillway
