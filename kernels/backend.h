// Chooses a kernels::Ops implementation by name.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/ops.h"

namespace spillway::kernels {

// "cpu": fp32 reference backend (OpenMP); "cuda" (CUDA builds): GPU `device`. Any other name
// is an InvalidArgument error that lists the backends this build has.
absl::StatusOr<std::unique_ptr<Ops>> CreateOps(absl::string_view backend, int device = 0);

// The GPUs this process can use (0 in a build without CUDA, or with no usable GPU).
int GpuCount();

}  // namespace spillway::kernels
