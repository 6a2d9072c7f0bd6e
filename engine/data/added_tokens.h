// The added tokens of a Hugging Face tokenizer (special tokens such as <|endoftext|>): each is
// one id wherever its exact text occurs, and is found before pre-tokenization, so no pre-token
// or merge ever spans it. As in HF, tokens with normalized = false are found first, in the whole
// text; tokens with normalized = true then in the stretches between them. At each step the
// match that starts first wins, and of those the longest.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace spillway {

class AddedTokens {
 public:
  struct Token {
    std::string content;  // not empty
    uint32_t id = 0;
    bool special = false;
    bool normalized = false;
  };

  void Add(Token token);

  // Calls `on_text` with each non-empty stretch of `text` between added tokens and `on_token`
  // with each added token's id, in order; stops at the first error.
  absl::Status Split(absl::string_view text,
                     absl::FunctionRef<absl::Status(absl::string_view)> on_text,
                     absl::FunctionRef<absl::Status(uint32_t)> on_token) const;

  const std::vector<Token>& tokens() const { return tokens_; }
  // The added token with this content or id, or nullptr.
  const Token* Find(absl::string_view content) const;
  const Token* FindId(uint32_t id) const;

 private:
  // The indices of one pass's tokens, by first byte, longest first.
  using Index = std::vector<std::vector<size_t>>;
  absl::Status SplitPass(const Index& index, absl::string_view text,
                         absl::FunctionRef<absl::Status(absl::string_view)> on_text,
                         absl::FunctionRef<absl::Status(uint32_t)> on_token) const;

  std::vector<Token> tokens_;
  Index raw_index_ = Index(256);         // normalized = false
  Index normalized_index_ = Index(256);  // normalized = true
  absl::flat_hash_map<std::string, size_t> by_content_;
  absl::flat_hash_map<uint32_t, size_t> by_id_;
};

}  // namespace spillway
