// The one way spillway checks CUDA runtime return codes (cuBLAS has its own, in kernels/cuda).
// Only built when CUDA is (SPILLWAY_WITH_CUDA).
#pragma once

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/status.h"

namespace spillway {

// OK for cudaSuccess; otherwise "<what>: CUDA error <name>: <description>", ResourceExhausted
// for out-of-memory and Unavailable when there is no usable device.
absl::Status CudaStatus(cudaError_t err, absl::string_view what);

}  // namespace spillway

// Returns from the enclosing Status-returning function if a CUDA call fails; the message
// names the call as written.
#define SPW_CUDA_CHECK(expr) SPW_RETURN_IF_ERROR(::spillway::CudaStatus((expr), #expr))
