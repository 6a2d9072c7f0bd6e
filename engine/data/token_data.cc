#include "engine/data/token_data.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<TokenData> TokenData::Open(const std::string& path) {
  SPW_ASSIGN_OR_RETURN(TokenFile file, TokenFile::Open(path));
  return FromFile(std::move(file));
}

TokenData TokenData::FromFile(TokenFile file) {
  TokenData data;
  data.name_ = file.path();
  data.vocab_size_ = file.vocab_size();
  data.file_.emplace(std::move(file));
  return data;
}

absl::StatusOr<TokenData> TokenData::FromVector(std::vector<uint32_t> tokens, uint32_t vocab_size,
                                                std::string name, std::vector<uint8_t> masked) {
  if (vocab_size == 0) return absl::InvalidArgumentError(absl::StrCat(name, ": vocab_size is 0"));
  if (!masked.empty() && masked.size() != tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", masked.size(), " mask entries for ", tokens.size(), " tokens"));
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": token ", tokens[i], " at position ",
                                                     i, " is >= vocab_size ", vocab_size));
    }
  }
  TokenData data;
  data.name_ = std::move(name);
  data.vocab_size_ = vocab_size;
  data.tokens_ = std::move(tokens);
  data.masked_ = std::move(masked);
  return data;
}

}  // namespace spillway
