#include "engine/checkpoint/rank_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_io.h"
#include "core/status.h"

namespace spillway {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the rank file format is little-endian; add byte swapping for this platform");

// Header field offsets.
constexpr size_t kVersionAt = 8;
constexpr size_t kRankAt = 12;
constexpr size_t kWorldSizeAt = 16;
constexpr size_t kEntryCountAt = 20;
constexpr size_t kTableBytesAt = 24;
constexpr size_t kDataOffsetAt = 32;
constexpr size_t kDataBytesAt = 40;
// [48, 64) reserved, zero.

// Fixed part of a table entry besides the name: u32 name_len, u64 offset, u64 bytes, u32 crc.
constexpr uint64_t kEntryFixedBytes = 4 + 8 + 8 + 4;
// Upper bound on a table we are willing to load (guards against absurd corrupt headers).
constexpr uint64_t kMaxTableBytes = uint64_t{1} << 30;

constexpr uint64_t AlignUp(uint64_t v) {
  return (v + kRankFileAlignment - 1) / kRankFileAlignment * kRankFileAlignment;
}

template <typename T>
void Put(std::vector<std::byte>& buf, size_t at, T value) {
  std::memcpy(buf.data() + at, &value, sizeof(T));
}
template <typename T>
void Append(std::vector<std::byte>& buf, T value) {
  size_t at = buf.size();
  buf.resize(at + sizeof(T));
  Put(buf, at, value);
}
template <typename T>
T Get(const std::byte* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

std::string ResumeHint() { return "resume from an earlier checkpoint"; }

absl::Status Truncated(const std::string& path, uint64_t expected, uint64_t found) {
  return absl::DataLossError(absl::StrCat("checkpoint ", path, " is truncated (expected ", expected,
                                          " bytes, found ", found,
                                          "); it was not completely written — ", ResumeHint()));
}

absl::Status Corrupt(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("checkpoint ", path, " is corrupted (", what,
                                          "); it was damaged after writing — ", ResumeHint()));
}

absl::Status WriteAll(int fd, std::span<const std::byte> data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, absl::StrCat("write ", path));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PreadAll(int fd, std::span<std::byte> dst, uint64_t offset, const std::string& path,
                      uint64_t expected_file_bytes) {
  size_t done = 0;
  while (done < dst.size()) {
    ssize_t n = pread(fd, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, absl::StrCat("read ", path));
    if (n == 0) return Truncated(path, expected_file_bytes, offset + done);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RankFileStreamWriter> RankFileStreamWriter::Create(const std::string& path, int rank,
                                                                  int world_size,
                                                                  std::vector<PlannedBlob> blobs) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write checkpoint ", path, ": rank ",
                                                   rank, " is not in [0, world_size=", world_size,
                                                   ")"));
  }
  if (blobs.size() > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write checkpoint ", path, ": too many blobs (", blobs.size(), ")"));
  }
  RankFileStreamWriter w;
  w.path_ = path;
  w.rank_ = rank;
  w.world_size_ = world_size;
  std::set<absl::string_view> seen;
  uint64_t table_bytes = 0;
  for (const PlannedBlob& blob : blobs) {
    if (blob.name.empty() || blob.name.size() > kMaxBlobNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat("cannot write checkpoint ", path,
                                                     ": blob name '", blob.name, "' must be 1 to ",
                                                     kMaxBlobNameBytes, " bytes long"));
    }
    if (!seen.insert(blob.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("cannot write checkpoint ", path,
                                                     ": blob name '", blob.name,
                                                     "' is used twice; blob names must be unique"));
    }
    table_bytes += kEntryFixedBytes + blob.name.size();
  }
  w.table_bytes_ = table_bytes;
  w.data_offset_ = AlignUp(kRankFileHeaderBytes + table_bytes + 4);
  uint64_t cursor = w.data_offset_;
  w.data_end_ = w.data_offset_;
  for (PlannedBlob& blob : blobs) {
    w.entries_.push_back({std::move(blob.name), cursor, blob.bytes, 0});
    w.data_end_ = cursor + blob.bytes;
    cursor = AlignUp(w.data_end_);
  }
  w.written_.assign(w.entries_.size(), false);
  w.fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd_ < 0) return PosixError(errno, absl::StrCat("create checkpoint file ", path));
  // The whole length at once: zeros for the header (written last) and the alignment gaps.
  if (ftruncate(w.fd_, static_cast<off_t>(w.data_end_)) != 0) {
    return PosixError(errno, absl::StrCat("size checkpoint file ", path));
  }
  return w;
}

absl::Status RankFileStreamWriter::WriteBlob(size_t index, std::span<const std::byte> data) {
  if (index >= entries_.size() || written_[index] || data.size() != entries_[index].bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", path_, ": blob ", index, " is not planned, already written, or of ",
        data.size(), " bytes instead of the planned size"));
  }
  RankFileEntry& e = entries_[index];
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(e.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, absl::StrCat("write ", path_));
    done += static_cast<size_t>(n);
  }
  e.crc32 = Crc32(data);
  written_[index] = true;
  return absl::OkStatus();
}

absl::Status RankFileStreamWriter::Finish() {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (!written_[i]) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", path_, ": blob '", entries_[i].name, "' was not written"));
    }
  }
  std::vector<std::byte> head(kRankFileHeaderBytes);
  for (const RankFileEntry& e : entries_) {
    Append<uint32_t>(head, static_cast<uint32_t>(e.name.size()));
    const auto* name = reinterpret_cast<const std::byte*>(e.name.data());
    head.insert(head.end(), name, name + e.name.size());
    Append<uint64_t>(head, e.offset);
    Append<uint64_t>(head, e.bytes);
    Append<uint32_t>(head, e.crc32);
  }
  std::memcpy(head.data(), kRankFileMagic, sizeof(kRankFileMagic));
  Put<uint32_t>(head, kVersionAt, kRankFileVersion);
  Put<uint32_t>(head, kRankAt, static_cast<uint32_t>(rank_));
  Put<uint32_t>(head, kWorldSizeAt, static_cast<uint32_t>(world_size_));
  Put<uint32_t>(head, kEntryCountAt, static_cast<uint32_t>(entries_.size()));
  Put<uint64_t>(head, kTableBytesAt, table_bytes_);
  Put<uint64_t>(head, kDataOffsetAt, data_offset_);
  Put<uint64_t>(head, kDataBytesAt, data_end_ - data_offset_);
  Append<uint32_t>(head, Crc32(head));
  if (lseek(fd_, 0, SEEK_SET) != 0) return PosixError(errno, absl::StrCat("seek ", path_));
  SPW_RETURN_IF_ERROR(WriteAll(fd_, head, path_));
  if (fsync(fd_) != 0) return PosixError(errno, absl::StrCat("fsync ", path_));
  const int fd = std::exchange(fd_, -1);
  if (close(fd) != 0) return PosixError(errno, absl::StrCat("close ", path_));
  return absl::OkStatus();
}

RankFileStreamWriter::RankFileStreamWriter(RankFileStreamWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      rank_(other.rank_),
      world_size_(other.world_size_),
      entries_(std::move(other.entries_)),
      written_(std::move(other.written_)),
      table_bytes_(other.table_bytes_),
      data_offset_(other.data_offset_),
      data_end_(other.data_end_) {}

RankFileStreamWriter::~RankFileStreamWriter() {
  if (fd_ >= 0) close(fd_);
}

absl::Status WriteRankFileAt(const std::string& path, int rank, int world_size,
                             std::span<const CheckpointBlob> blobs) {
  std::vector<RankFileStreamWriter::PlannedBlob> plan;
  for (const CheckpointBlob& blob : blobs) plan.push_back({blob.name, blob.data.size()});
  SPW_ASSIGN_OR_RETURN(RankFileStreamWriter writer,
                       RankFileStreamWriter::Create(path, rank, world_size, std::move(plan)));
  for (size_t i = 0; i < blobs.size(); ++i) SPW_RETURN_IF_ERROR(writer.WriteBlob(i, blobs[i].data));
  return writer.Finish();
}

RankFileReader::RankFileReader(RankFileReader&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      rank_(other.rank_),
      world_size_(other.world_size_),
      file_bytes_(other.file_bytes_),
      entries_(std::move(other.entries_)),
      index_(std::move(other.index_)) {}

RankFileReader& RankFileReader::operator=(RankFileReader&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    rank_ = other.rank_;
    world_size_ = other.world_size_;
    file_bytes_ = other.file_bytes_;
    entries_ = std::move(other.entries_);
    index_ = std::move(other.index_);
  }
  return *this;
}

RankFileReader::~RankFileReader() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<RankFileReader> RankFileReader::Open(const std::string& path) {
  RankFileReader reader;
  reader.path_ = path;
  reader.fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (reader.fd_ < 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("checkpoint file ", path,
                                              " does not exist; the checkpoint is incomplete "
                                              "(or was written with another world size) — ",
                                              ResumeHint()));
    }
    return PosixError(err, absl::StrCat("open checkpoint file ", path));
  }
  struct stat st;
  if (fstat(reader.fd_, &st) != 0) return PosixError(errno, absl::StrCat("stat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint file ", path, " is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  reader.file_bytes_ = size;

  // Header.
  std::vector<std::byte> head(std::min<uint64_t>(size, kRankFileHeaderBytes));
  SPW_RETURN_IF_ERROR(PreadAll(reader.fd_, head, 0, path, kRankFileHeaderBytes));
  if (size >= sizeof(kRankFileMagic) &&
      std::memcmp(head.data(), kRankFileMagic, sizeof(kRankFileMagic)) != 0) {
    return absl::DataLossError(absl::StrCat("checkpoint file ", path,
                                            " is not a spillway checkpoint (bad magic; expected "
                                            "SPWCKPT1); pass the right file or directory"));
  }
  if (size < kRankFileHeaderBytes) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", path, " is truncated (found ", size, " bytes, less than the ",
        kRankFileHeaderBytes, "-byte header); it was not completely written — ", ResumeHint()));
  }
  const uint32_t version = Get<uint32_t>(head.data() + kVersionAt);
  if (version != kRankFileVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", path, " has format version ", version, " but this build reads version ",
        kRankFileVersion, "; use a spillway build that matches the one that wrote it"));
  }
  const uint32_t rank = Get<uint32_t>(head.data() + kRankAt);
  const uint32_t world_size = Get<uint32_t>(head.data() + kWorldSizeAt);
  const uint32_t entry_count = Get<uint32_t>(head.data() + kEntryCountAt);
  const uint64_t table_bytes = Get<uint64_t>(head.data() + kTableBytesAt);
  const uint64_t data_offset = Get<uint64_t>(head.data() + kDataOffsetAt);
  const uint64_t data_bytes = Get<uint64_t>(head.data() + kDataBytesAt);
  if (table_bytes > kMaxTableBytes ||
      data_offset != AlignUp(kRankFileHeaderBytes + table_bytes + 4) ||
      data_bytes > std::numeric_limits<uint64_t>::max() - data_offset) {
    return Corrupt(path, "invalid header");
  }
  const uint64_t expected_size = data_offset + data_bytes;
  const uint64_t table_end = kRankFileHeaderBytes + table_bytes + 4;
  if (size < table_end) return Truncated(path, expected_size, size);

  // Header + table CRC, before trusting anything else in them.
  head.resize(table_end);
  SPW_RETURN_IF_ERROR(PreadAll(reader.fd_, std::span(head).subspan(kRankFileHeaderBytes),
                               kRankFileHeaderBytes, path, expected_size));
  const uint32_t stored_crc = Get<uint32_t>(head.data() + table_end - 4);
  const uint32_t actual_crc = Crc32(std::span(head).first(table_end - 4));
  if (stored_crc != actual_crc) return Corrupt(path, "header/entry table crc mismatch");
  if (size < expected_size) return Truncated(path, expected_size, size);
  if (size > expected_size) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, " has the wrong size (expected ",
                                            expected_size, " bytes, found ", size,
                                            "); it was modified after writing — ", ResumeHint()));
  }
  if (world_size == 0 || rank >= world_size || world_size > std::numeric_limits<int>::max()) {
    return Corrupt(path, absl::StrCat("rank ", rank, " of world size ", world_size));
  }
  reader.rank_ = static_cast<int>(rank);
  reader.world_size_ = static_cast<int>(world_size);

  // Entry table.
  const std::byte* p = head.data() + kRankFileHeaderBytes;
  const std::byte* end = p + table_bytes;
  uint64_t prev_end = data_offset;
  reader.entries_.reserve(entry_count);
  for (uint32_t i = 0; i < entry_count; ++i) {
    if (static_cast<uint64_t>(end - p) < kEntryFixedBytes) {
      return Corrupt(path, "entry table shorter than its entry count");
    }
    const uint32_t name_len = Get<uint32_t>(p);
    p += 4;
    if (name_len == 0 || name_len > kMaxBlobNameBytes ||
        static_cast<uint64_t>(end - p) < name_len + kEntryFixedBytes - 4) {
      return Corrupt(path, absl::StrCat("entry ", i, " has an invalid name length"));
    }
    RankFileEntry entry;
    entry.name.assign(reinterpret_cast<const char*>(p), name_len);
    p += name_len;
    entry.offset = Get<uint64_t>(p);
    entry.bytes = Get<uint64_t>(p + 8);
    entry.crc32 = Get<uint32_t>(p + 16);
    p += 20;
    if (entry.offset % kRankFileAlignment != 0 || entry.offset < prev_end || entry.offset > size ||
        entry.bytes > size - entry.offset) {
      return Corrupt(path, absl::StrCat("entry ", entry.name, " lies outside the data region"));
    }
    prev_end = entry.offset + entry.bytes;
    if (!reader.index_.emplace(entry.name, reader.entries_.size()).second) {
      return Corrupt(path, absl::StrCat("entry ", entry.name, " appears twice"));
    }
    reader.entries_.push_back(std::move(entry));
  }
  if (p != end) return Corrupt(path, "entry table longer than its entry count");
  return reader;
}

const RankFileEntry* RankFileReader::Find(absl::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::vector<std::string> RankFileReader::Names() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const RankFileEntry& e : entries_) names.push_back(e.name);
  return names;
}

absl::Status RankFileReader::ReadBlob(absl::string_view name, std::span<std::byte> dst) const {
  const RankFileEntry* entry = Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", path_, " has no entry '", name,
                     "' (available: ", absl::StrJoin(Names(), ", "),
                     "); the checkpoint was written by a different model or configuration"));
  }
  if (entry->bytes != dst.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", path_, " entry ", name, " has ", entry->bytes,
                     " bytes but the destination has ", dst.size(),
                     " bytes; the checkpoint was written by a different model or configuration"));
  }
  SPW_RETURN_IF_ERROR(PreadAll(fd_, dst, entry->offset, path_, file_bytes_));
  const uint32_t crc = Crc32(dst);
  if (crc != entry->crc32) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path_, " entry ", name,
                                            " is corrupted (crc mismatch: stored ",
                                            absl::Hex(entry->crc32, absl::kZeroPad8), ", computed ",
                                            absl::Hex(crc, absl::kZeroPad8), "); ", ResumeHint()));
  }
  return absl::OkStatus();
}

}  // namespace spillway
