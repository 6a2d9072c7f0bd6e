// One read-only input type for the batch loader: tokens from a token file or from memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/token_file.h"

namespace spillway {

class TokenData {
 public:
  // Opens and validates a token file (see TokenFile::Open); name() is the path.
  static absl::StatusOr<TokenData> Open(const std::string& path);
  static TokenData FromFile(TokenFile file);
  // Owned tokens, e.g. a split of the synthetic language. Fails if vocab_size is 0 or a token
  // is >= vocab_size; `name` (e.g. "synthetic train split") is used in error messages.
  static absl::StatusOr<TokenData> FromVector(std::vector<uint32_t> tokens, uint32_t vocab_size,
                                              std::string name);

  TokenData(TokenData&&) = default;
  TokenData& operator=(TokenData&&) = default;
  TokenData(const TokenData&) = delete;
  TokenData& operator=(const TokenData&) = delete;

  // The path, or the name given to FromVector.
  const std::string& name() const { return name_; }
  size_t size() const { return file_ ? file_->size() : tokens_.size(); }
  uint32_t vocab_size() const { return vocab_size_; }
  // Token i; i < size().
  uint32_t at(size_t i) const { return file_ ? file_->at(i) : tokens_[i]; }

 private:
  TokenData() = default;

  std::string name_;
  uint32_t vocab_size_ = 0;
  std::optional<TokenFile> file_;
  std::vector<uint32_t> tokens_;
};

}  // namespace spillway
