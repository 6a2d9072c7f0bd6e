#include "partitioner/unit_state.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<UnitState> UnitState::Allocate(UnitLayout layout, Tier tier,
                                              const ShardingPlan& plan) {
  const ShardRange shard = ShardOf(layout.numel(), plan.world_size, plan.rank);
  const size_t full = shard.padded_numel * sizeof(float);
  const size_t moments =
      (plan.shard_optimizer_state ? shard.shard_numel : shard.padded_numel) * sizeof(float);
  const std::string name = layout.name();
  UnitState s{std::move(layout), shard, plan.shard_optimizer_state, {}, {}, {}, {}};
  SPW_ASSIGN_OR_RETURN(s.params, Buffer::Allocate(full, tier, absl::StrCat(name, " parameters")));
  SPW_ASSIGN_OR_RETURN(s.grads, Buffer::Allocate(full, tier, absl::StrCat(name, " gradients")));
  SPW_ASSIGN_OR_RETURN(s.exp_avg, Buffer::Allocate(moments, tier, absl::StrCat(name, " Adam m")));
  SPW_ASSIGN_OR_RETURN(s.exp_avg_sq,
                       Buffer::Allocate(moments, tier, absl::StrCat(name, " Adam v")));
  return s;
}

}  // namespace spillway
