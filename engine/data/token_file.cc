#include "engine/data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "core/status.h"

namespace spillway {
namespace {

constexpr absl::string_view kRegenerateHint =
    "truncated or not a spillway token file; regenerate with spillway prepare";

void PutLe(std::string& out, size_t offset, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[offset + i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

size_t MaskBytes(uint64_t token_count) { return static_cast<size_t>((token_count + 7) / 8); }

uint64_t GetLe(const unsigned char* p, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t{p[i]} << (8 * i);
  return value;
}

// Writes `count` tokens, token i being get(i), to `path`; with a non-empty `masked`, version 2
// with the loss mask.
template <typename Get>
absl::Status WriteTokens(const std::string& path, size_t count, uint32_t vocab_size, Get get,
                         std::span<const uint8_t> masked = {}) {
  const std::string context = absl::StrCat("write token file ", path);
  if (vocab_size == 0)
    return absl::InvalidArgumentError(absl::StrCat(context, ": vocab_size is 0"));
  const bool has_mask = !masked.empty();
  if (has_mask && masked.size() != count) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": ", masked.size(), " mask entries for ", count, " tokens"));
  }
  const int bytes_per_token = vocab_size <= 65536 ? 2 : 4;
  const size_t mask_offset = kTokenFileHeaderBytes + count * bytes_per_token;
  std::string buffer(mask_offset + (has_mask ? MaskBytes(count) : 0), '\0');
  std::memcpy(buffer.data(), kTokenFileMagic, sizeof(kTokenFileMagic));
  PutLe(buffer, 8, has_mask ? kTokenFileVersionMasked : kTokenFileVersionPlain, 4);
  PutLe(buffer, 12, bytes_per_token, 4);
  PutLe(buffer, 16, count, 8);
  PutLe(buffer, 24, vocab_size, 4);
  if (has_mask) PutLe(buffer, 28, kTokenFileFlagLossMask, 4);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t token = get(i);
    if (token >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(context, ": token ", token, " at position ", i,
                                                     " is >= vocab_size ", vocab_size));
    }
    PutLe(buffer, kTokenFileHeaderBytes + i * bytes_per_token, token, bytes_per_token);
    if (has_mask && masked[i] != 0)
      buffer[mask_offset + (i >> 3)] |= static_cast<char>(1 << (i & 7));
  }
  return Annotate(WriteFileAtomic(path, absl::string_view(buffer)), context);
}

}  // namespace

absl::Status WriteTokenFile(const std::string& path, std::span<const uint32_t> tokens,
                            uint32_t vocab_size, std::span<const uint8_t> masked) {
  return WriteTokens(
      path, tokens.size(), vocab_size, [&](size_t i) { return tokens[i]; }, masked);
}

absl::Status WriteByteTokenFile(const std::string& path, absl::string_view bytes) {
  return WriteTokens(path, bytes.size(), 256,
                     [&](size_t i) { return uint32_t{static_cast<unsigned char>(bytes[i])}; });
}

absl::StatusOr<TokenFile> TokenFile::Open(const std::string& path) {
  const std::string context = absl::StrCat("token file ", path);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError(errno, absl::StrCat("open ", context));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status status = PosixError(errno, absl::StrCat("stat ", context));
    close(fd);
    return status;
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(context, ": is a directory"));
  }
  const size_t file_bytes = static_cast<size_t>(st.st_size);
  if (file_bytes < kTokenFileHeaderBytes) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": file is ", file_bytes, " bytes, smaller than the ",
                     kTokenFileHeaderBytes, "-byte header; ", kRegenerateHint));
  }
  void* mapping = mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  close(fd);
  if (mapping == MAP_FAILED) return PosixError(mmap_errno, absl::StrCat("mmap ", context));

  TokenFile file;  // From here on the destructor unmaps on every error path.
  file.path_ = path;
  file.mapping_ = mapping;
  file.mapping_bytes_ = file_bytes;
  const auto* header = static_cast<const unsigned char*>(mapping);
  if (std::memcmp(header, kTokenFileMagic, sizeof(kTokenFileMagic)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": bad magic (expected \"SPWTOKEN\"); ", kRegenerateHint));
  }
  const uint64_t version = GetLe(header + 8, 4);
  if (version != kTokenFileVersionPlain && version != kTokenFileVersionMasked) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": unsupported version ", version, " (this build reads versions ",
                     kTokenFileVersionPlain, " and ", kTokenFileVersionMasked, ")"));
  }
  const uint64_t flags = version == kTokenFileVersionMasked ? GetLe(header + 28, 4) : 0;
  if ((flags & ~uint64_t{kTokenFileFlagLossMask}) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": unknown flags 0x", absl::Hex(flags),
                     " (this build knows bit 0, the loss mask); written by a newer spillway?"));
  }
  const bool has_mask = (flags & kTokenFileFlagLossMask) != 0;
  const uint64_t bytes_per_token = GetLe(header + 12, 4);
  if (bytes_per_token != 2 && bytes_per_token != 4) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": bad bytes_per_token ",
                                                   bytes_per_token, " (must be 2 or 4); ",
                                                   kRegenerateHint));
  }
  const uint64_t token_count = GetLe(header + 16, 8);
  const uint64_t vocab_size = GetLe(header + 24, 4);
  if (vocab_size == 0 || (bytes_per_token == 2 && vocab_size > 65536)) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": bad vocab_size ", vocab_size,
                                                   " for ", bytes_per_token, "-byte tokens"));
  }
  // Every size below fits: token_count <= max_tokens keeps header + tokens + mask in uint64.
  const uint64_t max_tokens =
      (std::numeric_limits<uint64_t>::max() - kTokenFileHeaderBytes) / (bytes_per_token + 1);
  const uint64_t mask_bytes = has_mask ? MaskBytes(token_count) : 0;
  const uint64_t expected = kTokenFileHeaderBytes + token_count * bytes_per_token + mask_bytes;
  if (token_count > max_tokens || expected != file_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": header says ", token_count, " tokens of ", bytes_per_token, " bytes",
        has_mask ? " and a loss mask" : "", ", so the file should be ", kTokenFileHeaderBytes,
        " + ", token_count, " * ", bytes_per_token, has_mask ? absl::StrCat(" + ", mask_bytes) : "",
        token_count > max_tokens ? std::string(" bytes (overflows)")
                                 : absl::StrCat(" = ", expected, " bytes"),
        ", but it is ", file_bytes, " bytes; ", kRegenerateHint));
  }
  file.tokens_ = header + kTokenFileHeaderBytes;
  file.size_ = static_cast<size_t>(token_count);
  file.vocab_size_ = static_cast<uint32_t>(vocab_size);
  file.bytes_per_token_ = static_cast<uint32_t>(bytes_per_token);
  file.version_ = static_cast<uint32_t>(version);
  if (has_mask) {
    file.mask_ = file.tokens_ + token_count * bytes_per_token;
    const unsigned tail_bits = static_cast<unsigned>(token_count % 8);
    if (tail_bits != 0 && (file.mask_[mask_bytes - 1] >> tail_bits) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": the loss mask has bits set past token ", token_count - 1,
                       " (corrupt); ", kRegenerateHint));
    }
  }
  for (size_t i = 0; i < file.size_; ++i) {
    const uint32_t token = file.at(i);
    if (token >= file.vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat(context, ": token ", token, " at position ", i,
                                                     " is >= vocab_size ", vocab_size));
    }
  }
  return file;
}

TokenFile::TokenFile(TokenFile&& other) noexcept { *this = std::move(other); }

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    Unmap();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_bytes_ = std::exchange(other.mapping_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    size_ = std::exchange(other.size_, 0);
    vocab_size_ = std::exchange(other.vocab_size_, 0);
    bytes_per_token_ = std::exchange(other.bytes_per_token_, 0);
    version_ = std::exchange(other.version_, 0);
    mask_ = std::exchange(other.mask_, nullptr);
  }
  return *this;
}

TokenFile::~TokenFile() { Unmap(); }

void TokenFile::Unmap() {
  if (mapping_ != nullptr) munmap(mapping_, mapping_bytes_);
  mapping_ = nullptr;
  mapping_bytes_ = 0;
}

}  // namespace spillway
