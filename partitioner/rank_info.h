// Which rank this process is, read from the launcher's environment variables.
#pragma once

#include "absl/status/statusor.h"

namespace spillway {

struct RankInfo {
  int rank = 0;              // 0 <= rank < world_size
  int world_size = 1;        // processes in the job
  int local_rank = 0;        // 0 <= local_rank < local_world_size, among this node's processes
  int local_world_size = 1;  // processes on this node

  friend bool operator==(const RankInfo&, const RankInfo&) = default;
};

// Reads the first launcher whose rank variable is set, in this order:
//   Open MPI (mpirun): OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE;
//   SLURM (srun):      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, and SLURM_NTASKS_PER_NODE or
//                      else SLURM_TASKS_PER_NODE in its uniform forms "N" or "N(xM)";
//   torchrun:          RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE.
// With none of them set: a single rank {0, 1, 0, 1}. Once a launcher is chosen all four of
// its values are required. A missing or non-numeric value, or an inconsistent one (rank >=
// world size, local rank >= local world size, local world size > world size), is
// InvalidArgument naming the variable. SLURM_TASKS_PER_NODE for an uneven layout
// ("2(x3),1") is InvalidArgument too.
// Note: inside an sbatch script but outside srun, SLURM_PROCID is 0 and SLURM_NTASKS is the
// allocation's; launch ranks with srun or mpirun.
absl::StatusOr<RankInfo> RankInfoFromEnvironment();

// The GPU (0 .. gpus-1) that rank `info` drives: its local rank's. With `may_share` (pipeline
// stages, whose traffic goes through host memory, not NCCL) a node with more processes than
// GPUs splits them into contiguous blocks of ceil(local_world_size / gpus) ranks per GPU, so
// neighbouring stages share one. FailedPrecondition when the rank would have no GPU.
absl::StatusOr<int> GpuForRank(const RankInfo& info, int gpus, bool may_share);

}  // namespace spillway
