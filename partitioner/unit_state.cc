#include "partitioner/unit_state.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<UnitState> UnitState::Allocate(UnitLayout layout, Tier tier) {
  const size_t bytes = layout.numel() * sizeof(float);
  const std::string name = layout.name();
  UnitState s{std::move(layout), {}, {}, {}, {}};
  SPW_ASSIGN_OR_RETURN(s.params, Buffer::Allocate(bytes, tier, absl::StrCat(name, " parameters")));
  SPW_ASSIGN_OR_RETURN(s.grads, Buffer::Allocate(bytes, tier, absl::StrCat(name, " gradients")));
  SPW_ASSIGN_OR_RETURN(s.exp_avg, Buffer::Allocate(bytes, tier, absl::StrCat(name, " Adam m")));
  SPW_ASSIGN_OR_RETURN(s.exp_avg_sq, Buffer::Allocate(bytes, tier, absl::StrCat(name, " Adam v")));
  return s;
}

}  // namespace spillway
