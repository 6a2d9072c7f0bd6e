#include "offload/io_warning.h"

#include <cstdio>

namespace spillway {

void WarnToStderr(absl::string_view message) {
  std::fprintf(stderr, "spillway: warning: %.*s\n", static_cast<int>(message.size()),
               message.data());
}

}  // namespace spillway
