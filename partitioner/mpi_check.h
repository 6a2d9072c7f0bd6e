// The one way spillway checks MPI return codes. MPI only returns codes (rather than aborting)
// on a communicator whose error handler is MPI_ERRORS_RETURN; MpiCommunicator sets it.
#pragma once

#include <mpi.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/status.h"

namespace spillway {

// OK for MPI_SUCCESS; otherwise "<what>: MPI error <class>: <MPI_Error_string>",
// InvalidArgument for the argument error classes (count, rank, root, tag, truncation...),
// Internal for the rest.
inline absl::Status MpiStatus(int code, absl::string_view what) {
  if (code == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  int error_class = code;
  if (MPI_Error_class(code, &error_class) != MPI_SUCCESS) error_class = code;
  const std::string message =
      absl::StrCat(what, ": MPI error ", error_class, ": ", absl::string_view(text, length));
  switch (error_class) {
    case MPI_ERR_BUFFER:
    case MPI_ERR_COUNT:
    case MPI_ERR_TYPE:
    case MPI_ERR_TAG:
    case MPI_ERR_RANK:
    case MPI_ERR_ROOT:
    case MPI_ERR_ARG:
    case MPI_ERR_TRUNCATE:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace spillway

// Returns from the enclosing Status-returning function if an MPI call fails; the message names
// the call as written.
#define SPW_MPI_CHECK(expr) SPW_RETURN_IF_ERROR(::spillway::MpiStatus((expr), #expr))
