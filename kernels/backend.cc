#include "kernels/backend.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_ops.h"

namespace spillway::kernels {

absl::StatusOr<std::unique_ptr<Ops>> CreateOps(absl::string_view backend) {
  if (backend == "cpu") return MakeCpuOps();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown kernels backend \"", backend, "\"; this build has: cpu"));
}

}  // namespace spillway::kernels
