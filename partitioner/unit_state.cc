#include "partitioner/unit_state.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<UnitState> UnitState::Allocate(UnitLayout layout) {
  const size_t bytes = layout.numel() * sizeof(float);
  const std::string name = layout.name();
  UnitState s{std::move(layout), {}, {}, {}, {}};
  SPW_ASSIGN_OR_RETURN(s.params, HostBuffer::Allocate(bytes, absl::StrCat(name, " parameters")));
  SPW_ASSIGN_OR_RETURN(s.grads, HostBuffer::Allocate(bytes, absl::StrCat(name, " gradients")));
  SPW_ASSIGN_OR_RETURN(s.exp_avg, HostBuffer::Allocate(bytes, absl::StrCat(name, " Adam m")));
  SPW_ASSIGN_OR_RETURN(s.exp_avg_sq, HostBuffer::Allocate(bytes, absl::StrCat(name, " Adam v")));
  return s;
}

}  // namespace spillway
