// The binary format of one rank's checkpoint shard ("rank file"): named blobs, each with a
// CRC-32, behind a versioned header and an entry table that has its own CRC-32.
//
// Layout (all integers little-endian; docs/checkpoint.md has the full description):
//   [0, 64)                 header: magic "SPWCKPT1", u32 version, u32 rank, u32 world_size,
//                           u32 entry_count, u64 table_bytes, u64 data_offset, u64 data_bytes,
//                           16 reserved zero bytes
//   [64, 64 + table_bytes)  entry table: per entry u32 name_len, name, u64 offset, u64 bytes,
//                           u32 crc32
//   next 4 bytes            u32 CRC-32 of header + table
//   zero padding up to data_offset (a multiple of 64)
//   [data_offset, end)      blob data; every blob starts at a 64-byte-aligned file offset
// The file is exactly data_offset + data_bytes bytes long.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

// A named blob to save. `data` must stay valid for the duration of the write call.
struct CheckpointBlob {
  std::string name;
  std::span<const std::byte> data;
};

inline constexpr char kRankFileMagic[8] = {'S', 'P', 'W', 'C', 'K', 'P', 'T', '1'};
inline constexpr uint32_t kRankFileVersion = 1;
inline constexpr uint64_t kRankFileHeaderBytes = 64;
inline constexpr uint64_t kRankFileAlignment = 64;
inline constexpr uint32_t kMaxBlobNameBytes = 4096;

// One entry of the table. `offset` is an absolute file offset.
struct RankFileEntry {
  std::string name;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};

// Writes a rank file to `path` (created or truncated, mode 0644) and fsyncs it. Does not fsync
// the directory: the checkpoint directory protocol does that once for all files. Blob names
// must be non-empty, at most kMaxBlobNameBytes long and unique.
absl::Status WriteRankFileAt(const std::string& path, int rank, int world_size,
                             std::span<const CheckpointBlob> blobs);

// Writes a rank file blob by blob, for state that is not in memory all at once: Create() plans
// the file from the blobs' names and sizes, WriteBlob() writes each one (exactly once, in any
// order, its CRC computed on the way) at its place, and Finish() writes the header and the
// entry table last, then fsyncs. Until Finish() the header is zeros, so an unfinished file never
// opens as a rank file. WriteRankFileAt() is this writer with every blob at hand.
class RankFileStreamWriter {
 public:
  struct PlannedBlob {
    std::string name;  // as for WriteRankFileAt
    uint64_t bytes = 0;
  };
  static absl::StatusOr<RankFileStreamWriter> Create(const std::string& path, int rank,
                                                     int world_size,
                                                     std::vector<PlannedBlob> blobs);
  // `data` must have the planned size of blob `index`.
  absl::Status WriteBlob(size_t index, std::span<const std::byte> data);
  // Every blob must have been written.
  absl::Status Finish();

  RankFileStreamWriter(RankFileStreamWriter&& other) noexcept;
  RankFileStreamWriter& operator=(RankFileStreamWriter&&) = delete;
  ~RankFileStreamWriter();

 private:
  RankFileStreamWriter() = default;

  std::string path_;
  int fd_ = -1;
  int rank_ = 0;
  int world_size_ = 1;
  std::vector<RankFileEntry> entries_;
  std::vector<bool> written_;
  uint64_t table_bytes_ = 0;
  uint64_t data_offset_ = 0;
  uint64_t data_end_ = 0;
};

// Reads a rank file. Open() verifies the header (magic, version), the header+table CRC, that
// every entry lies inside the file and that the file has exactly the size the header says, so
// truncation is reported at Open() with the expected and actual sizes. ReadBlob() verifies the
// blob's own CRC. Movable, not copyable; keeps the file open.
class RankFileReader {
 public:
  static absl::StatusOr<RankFileReader> Open(const std::string& path);

  RankFileReader(RankFileReader&& other) noexcept;
  RankFileReader& operator=(RankFileReader&& other) noexcept;
  RankFileReader(const RankFileReader&) = delete;
  RankFileReader& operator=(const RankFileReader&) = delete;
  ~RankFileReader();

  const std::string& path() const { return path_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  uint64_t file_bytes() const { return file_bytes_; }
  // Entries in file order.
  const std::vector<RankFileEntry>& entries() const { return entries_; }

  // nullptr if there is no entry called `name`.
  const RankFileEntry* Find(absl::string_view name) const;
  // Names in file order.
  std::vector<std::string> Names() const;

  // Reads blob `name` into `dst` (whose size must equal the blob's) and checks its CRC.
  absl::Status ReadBlob(absl::string_view name, std::span<std::byte> dst) const;

 private:
  RankFileReader() = default;

  std::string path_;
  int fd_ = -1;
  int rank_ = 0;
  int world_size_ = 0;
  uint64_t file_bytes_ = 0;
  std::vector<RankFileEntry> entries_;
  std::map<std::string, size_t> index_;  // name -> position in entries_
};

}  // namespace spillway
