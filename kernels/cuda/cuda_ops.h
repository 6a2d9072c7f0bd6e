// The CUDA backend of kernels::Ops (fp32 for now; bf16 is the next step, see
// docs/ARCHITECTURE.md). Pointers passed to its ops are device pointers.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/ops.h"

namespace spillway::kernels {

// Binds to CUDA device `device` and creates the backend's stream, cuBLASLt handle and
// workspace. Unavailable (with the CUDA error) when there is no usable device.
absl::StatusOr<std::unique_ptr<Ops>> MakeCudaOps(int device = 0);

}  // namespace spillway::kernels
