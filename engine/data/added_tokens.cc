#include "engine/data/added_tokens.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "core/status.h"

namespace spillway {

void AddedTokens::Add(Token token) {
  const size_t index = tokens_.size();
  Index& pass = token.normalized ? normalized_index_ : raw_index_;
  std::vector<size_t>& bucket = pass[static_cast<unsigned char>(token.content[0])];
  by_content_.try_emplace(token.content, index);
  by_id_.try_emplace(token.id, index);
  tokens_.push_back(std::move(token));
  bucket.push_back(index);
  std::stable_sort(bucket.begin(), bucket.end(), [&](size_t a, size_t b) {
    return tokens_[a].content.size() > tokens_[b].content.size();
  });
}

const AddedTokens::Token* AddedTokens::Find(absl::string_view content) const {
  auto it = by_content_.find(content);
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

const AddedTokens::Token* AddedTokens::FindId(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

absl::Status AddedTokens::Split(absl::string_view text,
                                absl::FunctionRef<absl::Status(absl::string_view)> on_text,
                                absl::FunctionRef<absl::Status(uint32_t)> on_token) const {
  return SplitPass(
      raw_index_, text,
      [&](absl::string_view stretch) {
        return SplitPass(normalized_index_, stretch, on_text, on_token);
      },
      on_token);
}

absl::Status AddedTokens::SplitPass(const Index& index, absl::string_view text,
                                    absl::FunctionRef<absl::Status(absl::string_view)> on_text,
                                    absl::FunctionRef<absl::Status(uint32_t)> on_token) const {
  size_t start = 0;  // of the stretch not yet passed on
  for (size_t i = 0; i < text.size();) {
    const Token* match = nullptr;
    for (size_t t : index[static_cast<unsigned char>(text[i])]) {
      if (absl::StartsWith(text.substr(i), tokens_[t].content)) {
        match = &tokens_[t];
        break;
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    if (i > start) SPW_RETURN_IF_ERROR(on_text(text.substr(start, i - start)));
    SPW_RETURN_IF_ERROR(on_token(match->id));
    i += match->content.size();
    start = i;
  }
  if (start < text.size()) SPW_RETURN_IF_ERROR(on_text(text.substr(start)));
  return absl::OkStatus();
}

}  // namespace spillway
