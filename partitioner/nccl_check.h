// The one way spillway checks NCCL return codes (CUDA builds with NCCL only).
#pragma once

#include <nccl.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/status.h"

namespace spillway {

// OK for ncclSuccess; otherwise "<what>: NCCL error <code>: <string> (<last error>)".
absl::Status NcclStatus(ncclResult_t result, absl::string_view what);

}  // namespace spillway

// Returns from the enclosing Status-returning function if an NCCL call fails; the message
// names the call as written.
#define SPW_NCCL_CHECK(expr) SPW_RETURN_IF_ERROR(::spillway::NcclStatus((expr), #expr))
