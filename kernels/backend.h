// Chooses a kernels::Ops implementation by name.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/ops.h"

namespace spillway::kernels {

// "cpu": fp32 reference backend (OpenMP). Any other name is an InvalidArgument error that
// lists the backends this build has.
absl::StatusOr<std::unique_ptr<Ops>> CreateOps(absl::string_view backend);

}  // namespace spillway::kernels
