// The token-file format: a 64-byte little-endian header followed by the tokens.
//
//   offset size  field
//   0      8     magic "SPWTOKEN"
//   8      4     uint32 version (kTokenFileVersion = 1)
//   12     4     uint32 bytes_per_token (2: uint16 tokens, 4: uint32 tokens)
//   16     8     uint64 token_count
//   24     4     uint32 vocab_size (every token is < vocab_size)
//   28     36    reserved, written as zero, ignored by readers of version 1
//   64     ...   token_count tokens, bytes_per_token bytes each, little-endian
//
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
inline constexpr uint32_t kTokenFileVersion = 1;
inline constexpr size_t kTokenFileHeaderBytes = 64;

// Writes `tokens` to `path` crash-safely ("<path>.tmp", fsync, rename, fsync the directory):
// no half-written file is ever left under `path`. Tokens are stored as uint16 when
// vocab_size <= 65536, else as uint32. Fails (naming the path) if vocab_size is 0, if a token
// is >= vocab_size, or on any I/O error.
absl::Status WriteTokenFile(const std::string& path, std::span<const uint32_t> tokens,
                            uint32_t vocab_size);

// The same for byte tokens (vocab 256), without widening them to uint32 first.
absl::Status WriteByteTokenFile(const std::string& path, absl::string_view bytes);

// A token file mapped read-only. Open() validates the header, the exact file size and every
// token, so at() never reads outside the mapping or returns a token >= vocab_size().
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
  size_t size_ = 0;
  uint32_t vocab_size_ = 0;
  uint32_t bytes_per_token_ = 0;
};

}  // namespace spillway
