// Where a buffer lives. Every flat buffer of state has exactly one tier at a time; offload/
// owns moving it between tiers.
#pragma once

#include "absl/strings/string_view.h"

namespace spillway {

enum class Tier {
  kHost,        // pageable CPU memory (the CPU backend's working memory)
  kPinnedHost,  // page-locked CPU memory, for asynchronous copies to and from a GPU
  kDevice,      // GPU memory
  kNvme,        // a file under nvme_path, moved through io_uring
};

absl::string_view TierName(Tier tier);

}  // namespace spillway
