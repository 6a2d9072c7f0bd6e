#include "partitioner/rank_info.h"

#include <cstdlib>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/status.h"

namespace spillway {
namespace {

std::optional<absl::string_view> Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return absl::string_view(value);
}

absl::StatusOr<int> ParseCount(const char* name, absl::string_view text) {
  int value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "=\"", text, "\" is not a non-negative integer"));
  }
  return value;
}

absl::StatusOr<int> ReadInt(const char* name) {
  const std::optional<absl::string_view> text = Env(name);
  if (!text) return absl::InvalidArgumentError(absl::StrCat(name, " is not set"));
  return ParseCount(name, *text);
}

constexpr const char kSlurmTasksPerNode[] = "SLURM_TASKS_PER_NODE";

// SLURM_TASKS_PER_NODE: "N" or "N(xM)" (M nodes with N tasks each).
absl::StatusOr<int> ReadSlurmTasksPerNode() {
  constexpr const char* kName = kSlurmTasksPerNode;
  const std::optional<absl::string_view> text = Env(kName);
  if (!text) {
    return absl::InvalidArgumentError(
        "neither SLURM_NTASKS_PER_NODE nor SLURM_TASKS_PER_NODE is set");
  }
  absl::string_view count = *text;
  const size_t paren = count.find('(');
  if (paren != absl::string_view::npos) {
    absl::string_view repeat = count.substr(paren);
    int nodes = 0;
    if (repeat.size() < 4 || repeat.substr(0, 2) != "(x" || repeat.back() != ')' ||
        !absl::SimpleAtoi(repeat.substr(2, repeat.size() - 3), &nodes) || nodes < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(kName, "=\"", *text,
                       "\" is not of the form \"N\" or \"N(xM)\" (uneven layouts are "
                       "not supported; set SLURM_NTASKS_PER_NODE)"));
    }
    count = count.substr(0, paren);
  }
  return ParseCount(kName, count);
}

struct Names {
  const char* rank;
  const char* world_size;
  const char* local_rank;
  const char* local_world_size;
};

absl::Status CheckLess(const char* lhs_name, int lhs, const char* rhs_name, int rhs) {
  if (lhs < rhs) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(lhs_name, "=", lhs, " must be less than ", rhs_name, "=", rhs));
}

absl::StatusOr<RankInfo> Read(const Names& names) {
  RankInfo info;
  SPW_ASSIGN_OR_RETURN(info.rank, ReadInt(names.rank));
  SPW_ASSIGN_OR_RETURN(info.world_size, ReadInt(names.world_size));
  SPW_ASSIGN_OR_RETURN(info.local_rank, ReadInt(names.local_rank));
  if (names.local_world_size == kSlurmTasksPerNode) {
    SPW_ASSIGN_OR_RETURN(info.local_world_size, ReadSlurmTasksPerNode());
  } else {
    SPW_ASSIGN_OR_RETURN(info.local_world_size, ReadInt(names.local_world_size));
  }
  SPW_RETURN_IF_ERROR(CheckLess(names.rank, info.rank, names.world_size, info.world_size));
  SPW_RETURN_IF_ERROR(
      CheckLess(names.local_rank, info.local_rank, names.local_world_size, info.local_world_size));
  if (info.local_world_size > info.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(names.local_world_size, "=",
                                                   info.local_world_size, " exceeds ",
                                                   names.world_size, "=", info.world_size));
  }
  return info;
}

}  // namespace

absl::StatusOr<RankInfo> RankInfoFromEnvironment() {
  const Names launchers[] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE"},
      {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
       Env("SLURM_NTASKS_PER_NODE") ? "SLURM_NTASKS_PER_NODE" : kSlurmTasksPerNode},
      {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
  };
  for (const Names& names : launchers) {
    if (Env(names.rank)) return Read(names);
  }
  return RankInfo{};
}

absl::StatusOr<int> GpuForRank(const RankInfo& info, int gpus, bool may_share) {
  if (info.local_rank < gpus && (info.local_world_size <= gpus || !may_share)) {
    return info.local_rank;
  }
  if (gpus > 0 && may_share) {
    const int per_gpu = (info.local_world_size + gpus - 1) / gpus;
    return info.local_rank / per_gpu;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "local rank ", info.local_rank, " has no GPU (this node has ", gpus, "); start at most ",
      gpus, " ranks per node, one per GPU", gpus > 0 ? " (pipeline stages may share GPUs)" : ""));
}

}  // namespace spillway
