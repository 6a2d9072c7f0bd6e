#include "core/tier.h"

namespace spillway {

absl::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kHost:
      return "cpu";
    case Tier::kPinnedHost:
      return "pinned cpu";
    case Tier::kDevice:
      return "gpu";
    case Tier::kNvme:
      return "nvme";
  }
  return "unknown";
}

}  // namespace spillway
