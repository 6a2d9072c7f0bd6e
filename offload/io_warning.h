// Where the I/O layer's one-line warnings go (a fallback it took, a limit it worked around).
//
// The default sink prints "spillway: warning: <message>" to stderr. Tests install their own to
// check what was said.
#pragma once

#include <functional>

#include "absl/strings/string_view.h"

namespace spillway {

using WarningSink = std::function<void(absl::string_view message)>;

void WarnToStderr(absl::string_view message);

}  // namespace spillway
