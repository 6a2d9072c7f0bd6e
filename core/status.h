// Status plumbing shared by every spillway library.
//
// Every fallible call returns absl::Status or absl::StatusOr<T>; these macros keep call
// sites short. Each external API (POSIX, CUDA, NCCL, MPI, io_uring) gets exactly one
// checking macro or function, next to its wrapper; POSIX's is PosixError() below.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define SPW_CONCAT_INNER(a, b) a##b
#define SPW_CONCAT(a, b) SPW_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define SPW_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status spw_status_ = (expr);       \
    if (!spw_status_.ok()) return spw_status_; \
  } while (0)

// `lhs = value of rexpr` (an absl::StatusOr<T>), or returns its error.
#define SPW_ASSIGN_OR_RETURN(lhs, rexpr) \
  SPW_ASSIGN_OR_RETURN_IMPL(SPW_CONCAT(spw_statusor_, __LINE__), lhs, rexpr)
#define SPW_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

namespace spillway {

// A Status for a failed POSIX call: "<what>: <strerror(err)>", with a code that matches
// errno (NotFound for ENOENT, PermissionDenied for EACCES, ResourceExhausted for ENOSPC...).
absl::Status PosixError(int err, absl::string_view what);

// Prefixes `status`'s message with `context` ("context: message"); OK stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace spillway
