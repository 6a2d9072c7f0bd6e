// The token-file format: a 64-byte little-endian header, the tokens, and (version 2) an
// optional loss-mask section.
//
//   offset size  field
//   0      8     magic "SPWTOKEN"
//   8      4     uint32 version (1 or 2)
//   12     4     uint32 bytes_per_token (2: uint16 tokens, 4: uint32 tokens)
//   16     8     uint64 token_count
//   24     4     uint32 vocab_size (every token is < vocab_size)
//   28     4     version 2: uint32 flags (bit 0: a loss mask follows the tokens; other bits 0);
//                version 1: reserved
//   32     32    reserved, written as zero, ignored by readers
//   64     ...   token_count tokens, bytes_per_token bytes each, little-endian
//   then   ...   version 2 with flag bit 0: ceil(token_count / 8) bytes; bit (i % 8) of byte
//                i / 8 is 1 when token i is masked: it is never a target (the batch loader gives
//                -1 there), e.g. a prompt token of an instruction example. Unused bits are 0.
//
// Writers write version 1 for files without a mask, so older readers still read them.
// docs/data.md describes the format in full.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

inline constexpr char kTokenFileMagic[8] = {'S', 'P', 'W', 'T', 'O', 'K', 'E', 'N'};
inline constexpr uint32_t kTokenFileVersionPlain = 1;   // no loss mask
inline constexpr uint32_t kTokenFileVersionMasked = 2;  // flags, optional loss mask
inline constexpr uint32_t kTokenFileFlagLossMask = 1;
inline constexpr size_t kTokenFileHeaderBytes = 64;

// Writes `tokens` to `path` crash-safely ("<path>.tmp", fsync, rename, fsync the directory):
// no half-written file is ever left under `path`. Tokens are stored as uint16 when
// vocab_size <= 65536, else as uint32. With a non-empty `masked` (one entry per token, nonzero:
// masked) the file is version 2 with a loss mask, else version 1. Fails (naming the path) if
// vocab_size is 0, if a token is >= vocab_size, if `masked` has another length, or on any I/O
// error.
absl::Status WriteTokenFile(const std::string& path, std::span<const uint32_t> tokens,
                            uint32_t vocab_size, std::span<const uint8_t> masked = {});

// The same for byte tokens (vocab 256), without widening them to uint32 first.
absl::Status WriteByteTokenFile(const std::string& path, absl::string_view bytes);

// A token file mapped read-only. Open() validates the header, the exact file size, every token
// and the mask's unused bits, so at() never reads outside the mapping or returns a token
// >= vocab_size().
class TokenFile {
 public:
  static absl::StatusOr<TokenFile> Open(const std::string& path);

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  uint32_t vocab_size() const { return vocab_size_; }
  uint32_t bytes_per_token() const { return bytes_per_token_; }
  uint32_t version() const { return version_; }
  bool has_loss_mask() const { return mask_ != nullptr; }
  // Whether token i (< size()) is masked; false for every token of a file without a mask.
  bool masked(size_t i) const { return mask_ != nullptr && ((mask_[i >> 3] >> (i & 7)) & 1); }

  // Token i; i < size().
  uint32_t at(size_t i) const {
    const unsigned char* p = tokens_ + i * bytes_per_token_;
    if (bytes_per_token_ == 2) return uint32_t{p[0]} | uint32_t{p[1]} << 8;
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
  }

 private:
  TokenFile() = default;
  void Unmap();

  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
  const unsigned char* mask_ = nullptr;  // the loss-mask section, or nullptr
  size_t size_ = 0;
  uint32_t vocab_size_ = 0;
  uint32_t bytes_per_token_ = 0;
  uint32_t version_ = 0;
};

}  // namespace spillway
