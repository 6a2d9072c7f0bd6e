#include "engine/checkpoint/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/file_io.h"
#include "core/status.h"

namespace spillway {
namespace {

constexpr char kMetaFile[] = "meta.json";
constexpr char kLatestFile[] = "latest";
constexpr char kTmpSuffix[] = ".tmp";
constexpr char kDeletingSuffix[] = ".deleting";

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string ParentDir(const std::string& path) {
  std::string parent = std::filesystem::path(StripTrailingSlashes(path)).parent_path().string();
  return parent.empty() ? "." : parent;
}

// "step_<digits>" -> step.
std::optional<int64_t> ParseStepDirName(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "step_")) return std::nullopt;
  if (name.empty() || name.size() > 18) return std::nullopt;
  for (char c : name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int64_t step = 0;
  if (!absl::SimpleAtoi(name, &step)) return std::nullopt;
  return step;
}

// Leftovers of an interrupted write or prune: step_<digits>.tmp, step_<digits>.deleting.
bool IsLeftoverDirName(absl::string_view name) {
  return (absl::ConsumeSuffix(&name, kTmpSuffix) || absl::ConsumeSuffix(&name, kDeletingSuffix)) &&
         ParseStepDirName(name).has_value();
}

absl::Status FsError(const std::error_code& ec, absl::string_view what) {
  return PosixError(ec.value(), what);
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return FsError(ec, absl::StrCat("remove ", path));
  return absl::OkStatus();
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return PosixError(errno, absl::StrCat("rename ", from, " to ", to));
  }
  return absl::OkStatus();
}

// NotFound if `path` does not exist; OK(true) for a directory, OK(false) for anything else.
absl::StatusOr<bool> IsDirectory(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return PosixError(errno, absl::StrCat("stat ", path));
  return S_ISDIR(st.st_mode);
}

absl::StatusOr<std::vector<std::string>> ListDirNames(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return FsError(ec, absl::StrCat("list directory ", dir));
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) names.push_back(it->path().filename().string());
  }
  if (ec) return FsError(ec, absl::StrCat("list directory ", dir));
  return names;
}

// "step_00000100, step_00000200" for error messages.
std::string DescribeStepDirs(const std::string& root) {
  absl::StatusOr<std::vector<CheckpointDirEntry>> dirs = ListCheckpoints(root);
  if (!dirs.ok()) return absl::StrCat("(could not list them: ", dirs.status().message(), ")");
  if (dirs->empty()) return "none";
  std::vector<std::string> names;
  for (const CheckpointDirEntry& d : *dirs) names.push_back(d.name);
  return absl::StrJoin(names, ", ");
}

std::string PickOneHint(const std::string& root) {
  absl::StatusOr<std::vector<CheckpointDirEntry>> dirs = ListCheckpoints(root);
  if (!dirs.ok() || dirs->empty()) return "";
  return absl::StrCat("; pass one of them explicitly (e.g. ", JoinPath(root, dirs->back().name),
                      ") to resume from it");
}

// The directory name in <root>/latest, validated.
absl::StatusOr<std::string> ReadLatestName(const std::string& root) {
  const std::string latest_path = JoinPath(root, kLatestFile);
  absl::StatusOr<std::string> contents = ReadFileToString(latest_path);
  if (!contents.ok()) {
    if (absl::IsNotFound(contents.status())) {
      std::string found = DescribeStepDirs(root);
      if (found == "none") {
        return absl::NotFoundError(
            absl::StrCat("no checkpoint found under ", root, " (no '", kLatestFile,
                         "' file and no step_* directories); check the checkpoint path"));
      }
      return absl::NotFoundError(absl::StrCat("checkpoint root ", root, " has no '", kLatestFile,
                                              "' file; step directories found: ", found,
                                              PickOneHint(root)));
    }
    return Annotate(contents.status(), absl::StrCat("cannot read checkpoint root ", root));
  }
  std::string name(absl::StripAsciiWhitespace(*contents));
  if (!ParseStepDirName(name).has_value()) {
    return absl::DataLossError(
        absl::StrCat("checkpoint root ", root, ": '", kLatestFile, "' file ", latest_path,
                     " is corrupt (contents \"", absl::CHexEscape(contents->substr(0, 64)),
                     "\"); step directories found: ", DescribeStepDirs(root), PickOneHint(root)));
  }
  return name;
}

absl::Status ValidateOptions(const CheckpointWriteOptions& options) {
  if (options.root.empty()) {
    return absl::InvalidArgumentError("cannot write checkpoint: the checkpoint root is empty");
  }
  if (options.step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write checkpoint under ", options.root,
                                                   ": step ", options.step, " is negative"));
  }
  if (options.world_size < 1 || options.world_size > 99999 || options.rank < 0 ||
      options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write checkpoint under ", options.root, ": rank ", options.rank,
                     " is not in [0, world_size=", options.world_size, ") (world_size <= 99999)"));
  }
  if (options.keep_last < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write checkpoint under ", options.root,
                                                   ": keep_last ", options.keep_last,
                                                   " is negative (0 keeps all)"));
  }
  return absl::OkStatus();
}

std::string TmpDir(const CheckpointWriteOptions& options) {
  return JoinPath(options.root, CheckpointStepDirName(options.step) + kTmpSuffix);
}

absl::Status RequireTmpDir(const CheckpointWriteOptions& options, absl::string_view what) {
  const std::string tmp = TmpDir(options);
  absl::StatusOr<bool> is_dir = IsDirectory(tmp);
  if (!is_dir.ok() || !*is_dir) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot ", what, ": ", tmp,
                     " does not exist; PrepareCheckpoint must run on rank 0 first (followed by a "
                     "barrier when world_size > 1)"));
  }
  return absl::OkStatus();
}

// Removes leftover *.tmp / *.deleting directories, then all but the newest keep_last step
// directories (never `keep`, the one just committed).
absl::Status Prune(const std::string& root, int64_t keep_last, const std::string& keep) {
  SPW_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirNames(root));
  bool changed = false;
  for (const std::string& name : names) {
    if (IsLeftoverDirName(name)) {
      SPW_RETURN_IF_ERROR(RemoveTree(JoinPath(root, name)));
      changed = true;
    }
  }
  if (keep_last > 0) {
    SPW_ASSIGN_OR_RETURN(std::vector<CheckpointDirEntry> dirs, ListCheckpoints(root));
    std::vector<CheckpointDirEntry> others;
    for (CheckpointDirEntry& d : dirs) {
      if (d.name != keep) others.push_back(std::move(d));
    }
    // `others` is oldest first; the newest keep_last - 1 of them stay.
    const size_t stay = static_cast<size_t>(std::min<int64_t>(keep_last - 1, others.size()));
    for (size_t i = 0; i + stay < others.size(); ++i) {
      // Rename first so that a crash mid-removal never leaves a half-deleted step_* directory.
      const std::string dir = JoinPath(root, others[i].name);
      const std::string doomed = dir + kDeletingSuffix;
      SPW_RETURN_IF_ERROR(Rename(dir, doomed));
      SPW_RETURN_IF_ERROR(RemoveTree(doomed));
      changed = true;
    }
  }
  if (changed) SPW_RETURN_IF_ERROR(FsyncDirectory(root));
  return absl::OkStatus();
}

}  // namespace

std::string CheckpointStepDirName(int64_t step) {
  return absl::StrCat("step_", absl::Dec(step, absl::kZeroPad8));
}

std::string CheckpointRankFileName(int rank, int world_size) {
  return absl::StrCat("rank_", absl::Dec(rank, absl::kZeroPad5), "_of_",
                      absl::Dec(world_size, absl::kZeroPad5), ".bin");
}

absl::StatusOr<std::string> WriteCheckpoint(const CheckpointWriteOptions& options,
                                            const nlohmann::json& meta,
                                            std::span<const CheckpointBlob> blobs) {
  SPW_RETURN_IF_ERROR(ValidateOptions(options));
  if (options.world_size != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WriteCheckpoint handles world_size 1 only (got ", options.world_size,
        "); with several ranks call PrepareCheckpoint (rank 0), barrier, WriteRankFile (every "
        "rank), barrier, CommitCheckpoint (rank 0)"));
  }
  SPW_RETURN_IF_ERROR(PrepareCheckpoint(options).status());
  SPW_RETURN_IF_ERROR(WriteRankFile(options, blobs));
  return CommitCheckpoint(options, meta);
}

absl::StatusOr<std::string> PrepareCheckpoint(const CheckpointWriteOptions& options) {
  SPW_RETURN_IF_ERROR(ValidateOptions(options));
  const std::string context = absl::StrCat("cannot write checkpoint under ", options.root,
                                           " (check that it is a writable directory)");
  const std::string root = StripTrailingSlashes(options.root);
  struct stat st;
  const bool root_existed = stat(root.c_str(), &st) == 0;
  SPW_RETURN_IF_ERROR(Annotate(MakeDirectories(root), context));
  if (!root_existed) SPW_RETURN_IF_ERROR(Annotate(FsyncDirectory(ParentDir(root)), context));
  const std::string tmp = TmpDir(options);
  // A stale tmp directory is what a crash mid-write leaves behind; it was never committed.
  SPW_RETURN_IF_ERROR(Annotate(RemoveTree(tmp), context));
  if (mkdir(tmp.c_str(), 0755) != 0) {
    return Annotate(PosixError(errno, absl::StrCat("create directory ", tmp)), context);
  }
  return tmp;
}

absl::Status WriteRankFile(const CheckpointWriteOptions& options,
                           std::span<const CheckpointBlob> blobs) {
  SPW_RETURN_IF_ERROR(ValidateOptions(options));
  SPW_RETURN_IF_ERROR(
      RequireTmpDir(options, absl::StrCat("write rank ", options.rank, "'s checkpoint file")));
  const std::string path =
      JoinPath(TmpDir(options), CheckpointRankFileName(options.rank, options.world_size));
  return Annotate(WriteRankFileAt(path, options.rank, options.world_size, blobs),
                  absl::StrCat("cannot write checkpoint step ", options.step, " under ",
                               options.root, " (check free space and permissions)"));
}

absl::StatusOr<std::string> CommitCheckpoint(const CheckpointWriteOptions& options,
                                             const nlohmann::json& meta) {
  SPW_RETURN_IF_ERROR(ValidateOptions(options));
  if (options.rank != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "CommitCheckpoint must run on rank 0 only (called on rank ", options.rank, ")"));
  }
  SPW_RETURN_IF_ERROR(RequireTmpDir(options, "commit checkpoint"));
  const std::string root = StripTrailingSlashes(options.root);
  const std::string tmp = TmpDir(options);
  const std::string name = CheckpointStepDirName(options.step);
  const std::string final_dir = JoinPath(root, name);

  // Every rank's file must be present and intact.
  nlohmann::json rank_files = nlohmann::json::array();
  for (int r = 0; r < options.world_size; ++r) {
    const std::string file_name = CheckpointRankFileName(r, options.world_size);
    const std::string path = JoinPath(tmp, file_name);
    absl::StatusOr<RankFileReader> file = RankFileReader::Open(path);
    if (!file.ok()) {
      if (absl::IsNotFound(file.status())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot commit checkpoint ", tmp, ": rank ", r, "'s file ", path,
            " is missing; every rank must finish WriteRankFile before rank 0 commits"));
      }
      return Annotate(file.status(),
                      absl::StrCat("cannot commit checkpoint ", tmp, ": rank ", r, "'s file"));
    }
    if (file->rank() != r || file->world_size() != options.world_size) {
      return absl::DataLossError(absl::StrCat("cannot commit checkpoint ", tmp, ": ", path,
                                              " says rank ", file->rank(), " of ",
                                              file->world_size()));
    }
    rank_files.push_back(file_name);
  }

  // meta.json last: its presence marks the directory complete. WriteFileAtomic fsyncs the file
  // and the tmp directory, which also makes the rank files' directory entries durable.
  nlohmann::json doc = {{"format_version", kCheckpointFormatVersion},
                        {"step", options.step},
                        {"world_size", options.world_size},
                        {"rank_files", std::move(rank_files)},
                        {"meta", meta}};
  const std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const std::string commit_context =
      absl::StrCat("cannot commit checkpoint ", final_dir, " (check free space and permissions)");
  SPW_RETURN_IF_ERROR(Annotate(WriteFileAtomic(JoinPath(tmp, kMetaFile), text), commit_context));

  // A directory with this name already exists: left by a crash after the rename but before
  // `latest` was updated, or by an abandoned run. Replace it unless it is the latest.
  absl::StatusOr<bool> final_is_dir = IsDirectory(final_dir);
  if (final_is_dir.ok()) {
    absl::StatusOr<std::string> latest = ReadLatestName(root);
    if (latest.ok() && *latest == name) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot commit checkpoint ", final_dir,
          ": it already exists and is the latest "
          "checkpoint; refusing to replace it (remove it or save under another step)"));
    }
    const std::string doomed = final_dir + kDeletingSuffix;
    SPW_RETURN_IF_ERROR(Annotate(RemoveTree(doomed), commit_context));
    SPW_RETURN_IF_ERROR(Annotate(Rename(final_dir, doomed), commit_context));
  } else if (!absl::IsNotFound(final_is_dir.status())) {
    return Annotate(final_is_dir.status(), commit_context);
  }

  SPW_RETURN_IF_ERROR(Annotate(Rename(tmp, final_dir), commit_context));
  SPW_RETURN_IF_ERROR(Annotate(FsyncDirectory(root), commit_context));
  SPW_RETURN_IF_ERROR(
      Annotate(WriteFileAtomic(JoinPath(root, kLatestFile), name + "\n"), commit_context));
  SPW_RETURN_IF_ERROR(
      Annotate(Prune(root, options.keep_last, name),
               absl::StrCat("checkpoint ", final_dir,
                            " was written and committed, but removing old checkpoints under ", root,
                            " failed (check permissions; the new checkpoint is usable)")));
  return final_dir;
}

absl::StatusOr<std::vector<CheckpointDirEntry>> ListCheckpoints(const std::string& root) {
  SPW_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirNames(root));
  std::vector<CheckpointDirEntry> dirs;
  for (std::string& name : names) {
    if (std::optional<int64_t> step = ParseStepDirName(name)) {
      dirs.push_back({*step, std::move(name)});
    }
  }
  std::sort(dirs.begin(), dirs.end(), [](const CheckpointDirEntry& a, const CheckpointDirEntry& b) {
    return a.step != b.step ? a.step < b.step : a.name < b.name;
  });
  return dirs;
}

absl::StatusOr<std::string> ResolveCheckpointDir(const std::string& path_in) {
  const std::string path = StripTrailingSlashes(path_in);
  absl::StatusOr<bool> is_dir = IsDirectory(path);
  if (!is_dir.ok()) {
    if (absl::IsNotFound(is_dir.status())) {
      return absl::NotFoundError(absl::StrCat("checkpoint path ", path,
                                              " does not exist; pass a checkpoint root or a "
                                              "step_* directory"));
    }
    return Annotate(is_dir.status(), absl::StrCat("cannot open checkpoint ", path));
  }
  if (!*is_dir) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint path ", path,
                     " is not a directory; pass a checkpoint root or a step_* "
                     "directory"));
  }
  struct stat st;
  const bool has_meta = stat(JoinPath(path, kMetaFile).c_str(), &st) == 0;
  const std::string base = std::filesystem::path(path).filename().string();
  if (has_meta || ParseStepDirName(base).has_value()) return path;

  SPW_ASSIGN_OR_RETURN(std::string name, ReadLatestName(path));
  const std::string dir = JoinPath(path, name);
  absl::StatusOr<bool> target_is_dir = IsDirectory(dir);
  if (!target_is_dir.ok() || !*target_is_dir) {
    return absl::NotFoundError(absl::StrCat(
        "checkpoint root ", path, ": '", kLatestFile, "' names ", name, " but ", dir,
        " does not exist; step directories found: ", DescribeStepDirs(path), PickOneHint(path)));
  }
  return dir;
}

absl::StatusOr<CheckpointReader> CheckpointReader::Open(const std::string& path, int rank,
                                                        int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("cannot open checkpoint ", path, ": rank ", rank,
                                                   " is not in [0, world_size=", world_size, ")"));
  }
  SPW_ASSIGN_OR_RETURN(std::string dir, ResolveCheckpointDir(path));
  const std::string meta_path = JoinPath(dir, kMetaFile);
  absl::StatusOr<std::string> text = ReadFileToString(meta_path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(absl::StrCat(
          "checkpoint ", dir, " has no ", kMetaFile,
          "; it is incomplete (its write did not finish) — resume from an earlier checkpoint"));
    }
    return Annotate(text.status(), absl::StrCat("cannot open checkpoint ", dir));
  }
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("checkpoint ", meta_path, " is corrupt (", what,
                                            ") — resume from an earlier checkpoint"));
  };
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return corrupt("not valid JSON");
  if (!doc.is_object()) return corrupt("not a JSON object");
  auto version = doc.find("format_version");
  if (version == doc.end() || !version->is_number_integer()) {
    return corrupt("no integer format_version");
  }
  if (version->get<int64_t>() != kCheckpointFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", dir, " has format_version ", version->get<int64_t>(),
                     " but this build reads version ", kCheckpointFormatVersion,
                     "; use a spillway build that matches the one that wrote it"));
  }
  auto step = doc.find("step");
  auto ws = doc.find("world_size");
  auto files = doc.find("rank_files");
  auto meta = doc.find("meta");
  if (step == doc.end() || !step->is_number_integer()) return corrupt("no integer step");
  if (ws == doc.end() || !ws->is_number_integer()) return corrupt("no integer world_size");
  if (files == doc.end() || !files->is_array()) return corrupt("no rank_files list");
  if (meta == doc.end()) return corrupt("no meta");
  if (ws->get<int64_t>() != world_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", dir, " was written by world_size ", ws->get<int64_t>(),
                     " ranks but is being opened with world_size ", world_size,
                     "; OpenAllRanks() reads a checkpoint of any number of ranks"));
  }
  const std::string file_name = CheckpointRankFileName(rank, world_size);
  if (files->size() != static_cast<size_t>(world_size) || !(*files)[rank].is_string() ||
      (*files)[rank].get<std::string>() != file_name) {
    return corrupt(absl::StrCat("rank_files does not list ", file_name, " for rank ", rank));
  }
  SPW_ASSIGN_OR_RETURN(RankFileReader file, RankFileReader::Open(JoinPath(dir, file_name)));
  if (file.rank() != rank || file.world_size() != world_size) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", file.path(), " says rank ", file.rank(), " of ", file.world_size(),
        ", expected rank ", rank, " of ", world_size, " — resume from an earlier checkpoint"));
  }
  return CheckpointReader(std::move(dir), step->get<int64_t>(), std::move(*meta), std::move(file));
}

absl::StatusOr<std::vector<CheckpointReader>> CheckpointReader::OpenAllRanks(
    const std::string& path) {
  SPW_ASSIGN_OR_RETURN(std::string dir, ResolveCheckpointDir(path));
  // meta.json names the world size; Open() validates it fully for each rank.
  absl::StatusOr<std::string> text = ReadFileToString(JoinPath(dir, kMetaFile));
  int world_size = 1;
  if (text.ok()) {
    nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("world_size") && doc["world_size"].is_number_integer()) {
      world_size = static_cast<int>(doc["world_size"].get<int64_t>());
    }
  }
  if (world_size < 1) world_size = 1;
  std::vector<CheckpointReader> readers;
  for (int r = 0; r < world_size; ++r) {
    SPW_ASSIGN_OR_RETURN(CheckpointReader reader, Open(dir, r, world_size));
    readers.push_back(std::move(reader));
  }
  return readers;
}

absl::StatusOr<uint64_t> CheckpointReader::BlobSize(absl::string_view name) const {
  const RankFileEntry* entry = file_.Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", file_.path(), " has no entry '", name,
                     "' (available: ", absl::StrJoin(file_.Names(), ", "),
                     "); the checkpoint was written by a different model or configuration"));
  }
  return entry->bytes;
}

}  // namespace spillway
