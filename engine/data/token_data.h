// One read-only input type for the batch loader: tokens from a token file or from memory, with
// an optional loss mask (a masked token is never a target; see token_file.h).
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
  // Owned tokens, e.g. a split of the synthetic language, and optionally their mask (one entry
  // per token, nonzero: masked). Fails if vocab_size is 0, a token is >= vocab_size or the mask
  // has another length; `name` (e.g. "synthetic train split") is used in error messages.
  static absl::StatusOr<TokenData> FromVector(std::vector<uint32_t> tokens, uint32_t vocab_size,
                                              std::string name, std::vector<uint8_t> masked = {});

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
  bool has_loss_mask() const { return file_ ? file_->has_loss_mask() : !masked_.empty(); }
  // Whether token i (< size()) is masked: never a target.
  bool masked(size_t i) const {
    return file_ ? file_->masked(i) : !masked_.empty() && masked_[i] != 0;
  }

 private:
  TokenData() = default;

  std::string name_;
  uint32_t vocab_size_ = 0;
  std::optional<TokenFile> file_;
  std::vector<uint32_t> tokens_;
  std::vector<uint8_t> masked_;  // empty: no mask
};

}  // namespace spillway
