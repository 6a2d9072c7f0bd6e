// Run under mpirun -np 2 only: rank 1 stops taking part (it sleeps past the test's timeout)
// while rank 0 waits for it in a collective through a ThreadedCommunicator with a 2 s timeout.
// Rank 0 must get DeadlineExceeded in bounded time and end the job (MpiCommunicator::AbortJob),
// so mpirun returns long before rank 1 wakes up. ctest passes it on rank 0's message and fails
// it on its own timeout.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "partitioner/mpi_communicator.h"
#include "partitioner/threaded_communicator.h"

int main() {
  absl::StatusOr<std::unique_ptr<spillway::Communicator>> mpi = spillway::MpiCommunicator::Create();
  if (!mpi.ok() || (*mpi)->world_size() != 2) {
    std::fprintf(stderr, "hung_rank_test needs mpirun -np 2\n");
    return 2;
  }
  if ((*mpi)->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  spillway::ThreadedCommunicator comm(mpi->get(), /*timeout_s=*/2.0);
  std::vector<float> data(1024, 1.0f);
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = comm.AllReduceSum(data.data(), data.size());
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "rank 0: after %.1f s: %s\n", waited, status.ToString().c_str());
  if (absl::IsDeadlineExceeded(status) && waited < 10) {
    std::fprintf(stderr, "rank 0: timed out as expected, ending the job\n");
  }
  std::fflush(nullptr);
  spillway::MpiCommunicator::AbortJob(status.ok() ? 0 : 1);
  return 1;
}
