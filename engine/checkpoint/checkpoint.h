// Checkpoint directories: a crash-safe write protocol and a verifying reader. Model-agnostic:
// a checkpoint is a JSON metadata object plus named binary blobs per rank.
//
// Layout under a checkpoint root (docs/checkpoint.md describes it in full):
//   <root>/step_00000100/meta.json                  written last; {"format_version", ..., "meta"}
//   <root>/step_00000100/rank_00000_of_00001.bin    one rank file per rank (rank_file.h)
//   <root>/latest                                   "step_00000100\n": newest complete checkpoint
//
// Write protocol: everything goes into <root>/step_X.tmp/ (a stale one from a crash is removed
// first); each file is fsynced, then the directory; step_X.tmp is renamed to step_X, the root
// is fsynced, and `latest` is replaced atomically. A crash at any point leaves the previous
// checkpoint intact and `latest` naming a complete one. Then old step_* directories beyond
// keep_last are removed (and leftover *.tmp directories with them).
//
// Several ranks (world_size > 1) write into the same directory. Each step runs where stated,
// with a barrier (MPI or otherwise; not part of this library) between them:
//   rank 0:     PrepareCheckpoint(options)            -- removes a stale step_X.tmp, creates it
//   -- barrier --
//   every rank: WriteRankFile(options, blobs)         -- writes and fsyncs its own rank file
//   -- barrier --
//   rank 0:     CommitCheckpoint(options, meta)       -- checks all ranks' files, writes meta.json,
//                                                        renames, updates latest, prunes
// WriteCheckpoint() runs all three for world_size == 1.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/checkpoint/rank_file.h"
#include "nlohmann/json.hpp"

namespace spillway {

// Version of the directory layout and of meta.json (the rank files carry their own).
inline constexpr int kCheckpointFormatVersion = 1;

struct CheckpointWriteOptions {
  std::string root;  // checkpoint root directory; created if missing
  int64_t step = 0;  // >= 0; names the directory step_<step, 8+ digits>
  int rank = 0;
  int world_size = 1;
  int64_t keep_last = 0;  // after a successful commit keep this many step_* dirs; 0 = keep all
};

// "step_00000100" (at least 8 digits).
std::string CheckpointStepDirName(int64_t step);
// "rank_00003_of_00008.bin".
std::string CheckpointRankFileName(int rank, int world_size);

// Writes a complete checkpoint for world_size == 1 (Prepare + WriteRankFile + Commit) and
// returns the final directory. With world_size > 1 use the three pieces with barriers.
absl::StatusOr<std::string> WriteCheckpoint(const CheckpointWriteOptions& options,
                                            const nlohmann::json& meta,
                                            std::span<const CheckpointBlob> blobs);

// Rank 0 only, before a barrier: creates the root if needed and a fresh <root>/step_X.tmp/
// (removing a stale one). Returns the tmp directory.
absl::StatusOr<std::string> PrepareCheckpoint(const CheckpointWriteOptions& options);

// Every rank, between the barriers: writes and fsyncs <root>/step_X.tmp/<rank file>.
absl::Status WriteRankFile(const CheckpointWriteOptions& options,
                           std::span<const CheckpointBlob> blobs);

// Rank 0 only, after all ranks' WriteRankFile returned OK (barrier): verifies that every rank's
// file is present and intact (header, table, size), writes meta.json, fsyncs, renames
// step_X.tmp to step_X, fsyncs the root, updates `latest` and prunes to keep_last. Returns the
// final directory. If step_X already exists and `latest` does not name it (left by a crash
// before `latest` was updated, or an abandoned run), it is replaced; if `latest` names it,
// this fails (FailedPrecondition) rather than touching the newest complete checkpoint.
absl::StatusOr<std::string> CommitCheckpoint(const CheckpointWriteOptions& options,
                                             const nlohmann::json& meta);

struct CheckpointDirEntry {
  int64_t step = 0;
  std::string name;  // "step_00000100"
};
// The step_<digits> directories directly under `root` (not *.tmp), oldest step first. Says
// nothing about whether they are complete.
absl::StatusOr<std::vector<CheckpointDirEntry>> ListCheckpoints(const std::string& root);

// `path` itself if it is a step directory (has meta.json or is named step_<digits>), else
// treats it as a root and follows its `latest` file. Errors list the step directories found.
absl::StatusOr<std::string> ResolveCheckpointDir(const std::string& path);

// Reads one rank's view of a checkpoint. Open() verifies meta.json (present, parses, has a
// supported format_version and the same world_size) and the rank file (see RankFileReader);
// every blob's CRC is verified when it is read.
class CheckpointReader {
 public:
  // `path`: a step directory, or a root (then `latest` is followed).
  static absl::StatusOr<CheckpointReader> Open(const std::string& path, int rank = 0,
                                               int world_size = 1);

  // One reader per rank file of the checkpoint at `path`, however many ranks wrote it (for
  // loading on a different number of ranks: resharding). Each is verified as by Open().
  static absl::StatusOr<std::vector<CheckpointReader>> OpenAllRanks(const std::string& path);

  // The metadata object passed to WriteCheckpoint/CommitCheckpoint.
  const nlohmann::json& meta() const { return meta_; }
  int64_t step() const { return step_; }
  int rank() const { return file_.rank(); }
  int world_size() const { return file_.world_size(); }
  // The step directory that was opened.
  const std::string& dir() const { return dir_; }
  const std::string& rank_file_path() const { return file_.path(); }

  // Blob names in file order.
  std::vector<std::string> BlobNames() const { return file_.Names(); }
  bool HasBlob(absl::string_view name) const { return file_.Find(name) != nullptr; }
  // NotFound (listing the available names) if there is no such blob.
  absl::StatusOr<uint64_t> BlobSize(absl::string_view name) const;
  // Reads blob `name` into `dst`; dst.size() must equal BlobSize(name). Verifies the CRC.
  absl::Status ReadBlob(absl::string_view name, std::span<std::byte> dst) const {
    return file_.ReadBlob(name, dst);
  }

 private:
  CheckpointReader(std::string dir, int64_t step, nlohmann::json meta, RankFileReader file)
      : dir_(std::move(dir)), step_(step), meta_(std::move(meta)), file_(std::move(file)) {}

  std::string dir_;
  int64_t step_;
  nlohmann::json meta_;
  RankFileReader file_;
};

}  // namespace spillway
