#include "kernels/backend.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_ops.h"
#if SPILLWAY_WITH_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_ops.h"
#endif

namespace spillway::kernels {

#if SPILLWAY_WITH_CUDA
constexpr char kBackends[] = "cpu, cuda";
#else
constexpr char kBackends[] = "cpu";
#endif

absl::StatusOr<std::unique_ptr<Ops>> CreateOps(absl::string_view backend, int device) {
  if (backend == "cpu") return MakeCpuOps();
#if SPILLWAY_WITH_CUDA
  if (backend == "cuda") return MakeCudaOps(device);
#endif
  return absl::InvalidArgumentError(
      absl::StrCat("unknown kernels backend \"", backend, "\"; this build has: ", kBackends));
}

int GpuCount() {
#if SPILLWAY_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
#else
  return 0;
#endif
}

}  // namespace spillway::kernels
