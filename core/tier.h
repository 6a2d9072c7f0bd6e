// Where memory lives. Every buffer of state has exactly one tier at a time; offload/ owns
// allocating it and moving it between tiers.
#pragma once

#include "absl/strings/string_view.h"

namespace spillway {

enum class Tier {
  kHost,        // pageable CPU memory (the CPU backend's working memory)
  kPinnedHost,  // page-locked CPU memory, for asynchronous copies to and from a GPU
  kDevice,      // GPU memory
  kNvme,        // a file under nvme_path, moved through io_uring
};

// "cpu", "pinned cpu", "gpu", "nvme": the names config files and reports use.
absl::string_view TierName(Tier tier);

}  // namespace spillway
