// The one way spillway checks CUDA runtime and cuBLAS return codes.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/status.h"

namespace spillway::kernels {

// OK for cudaSuccess; otherwise "<what>: CUDA error <name>: <description>".
absl::Status CudaStatus(cudaError_t err, absl::string_view what);
// OK for CUBLAS_STATUS_SUCCESS; otherwise "<what>: cuBLAS error <name>".
absl::Status CublasStatus(cublasStatus_t status, absl::string_view what);

}  // namespace spillway::kernels

// Return from the enclosing Status-returning function if a CUDA / cuBLAS call fails; the
// message names the call as written.
#define SPW_CUDA_CHECK(expr) SPW_RETURN_IF_ERROR(::spillway::kernels::CudaStatus((expr), #expr))
#define SPW_CUBLAS_CHECK(expr) SPW_RETURN_IF_ERROR(::spillway::kernels::CublasStatus((expr), #expr))
