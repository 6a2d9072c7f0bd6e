// Run under mpirun -np 2 only: rank 1 dies while rank 0 waits for it in a collective. The job
// must end with an error, not hang: ctest registers this with WILL_FAIL and a timeout, so it
// passes only if mpirun exits non-zero in time (Open MPI aborts the job when a rank exits
// without finalising).
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "partitioner/mpi_communicator.h"

int main() {
  absl::StatusOr<std::unique_ptr<spillway::Communicator>> comm =
      spillway::MpiCommunicator::Create();
  if (!comm.ok() || (*comm)->world_size() != 2) {
    std::fprintf(stderr, "rank_death_test needs mpirun -np 2\n");
    return 2;
  }
  if ((*comm)->rank() == 1) std::_Exit(3);
  std::vector<float> data(1024, 1.0f);
  absl::Status status = (*comm)->AllReduceSum(data.data(), data.size());
  std::fprintf(stderr, "rank 0: AllReduceSum returned: %s\n", status.ToString().c_str());
  return status.ok() ? 0 : 1;
}
