// The one way spillway checks cuBLAS return codes; CUDA runtime codes go through
// core/cuda_status.h (SPW_CUDA_CHECK).
#pragma once

#include <cublasLt.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/cuda_status.h"

namespace spillway::kernels {

// OK for CUBLAS_STATUS_SUCCESS; otherwise "<what>: cuBLAS error <name>".
absl::Status CublasStatus(cublasStatus_t status, absl::string_view what);

}  // namespace spillway::kernels

#define SPW_CUBLAS_CHECK(expr) SPW_RETURN_IF_ERROR(::spillway::kernels::CublasStatus((expr), #expr))
