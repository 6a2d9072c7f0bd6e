#include "partitioner/unit_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<UnitState> UnitState::Allocate(UnitLayout layout, Tier tier,
                                              const ShardingPlan& plan) {
  const ShardRange shard = ShardOf(layout.numel(), plan.world_size, plan.rank);
  auto bytes = [&](bool sharded) {
    return (sharded ? shard.shard_numel : shard.padded_numel) * sizeof(float);
  };
  const std::string name = layout.name();
  UnitState s{std::move(layout), shard,    plan.stage, Buffer(), Buffer(),
              Buffer(),          Buffer(), Buffer(),   Buffer()};
  if (plan.offload_params && (plan.stage != 3 || !plan.offload_optimizer)) {
    return absl::InvalidArgumentError(
        "offloaded parameters need stage 3 and the optimizer offloaded");
  }
  if (plan.params_in_master && (!plan.offload_params || !plan.external_optimizer_state)) {
    return absl::InvalidArgumentError(
        "parameters on NVMe need them offloaded and the optimizer state on NVMe");
  }
  s.params_offloaded = plan.offload_params;
  s.params_in_master = plan.params_in_master;
  s.optimizer_external = plan.offload_optimizer && plan.external_optimizer_state;
  const Tier optimizer_tier = plan.offload_optimizer ? plan.offload_tier : tier;
  const Tier param_tier = plan.offload_params ? plan.offload_tier : tier;
  if (!s.params_in_master) {
    SPW_ASSIGN_OR_RETURN(s.params, Buffer::Allocate(bytes(s.params_sharded()), param_tier,
                                                    absl::StrCat(name, " parameters")));
  }
  SPW_ASSIGN_OR_RETURN(s.grads, Buffer::Allocate(bytes(s.grads_sharded()), param_tier,
                                                 absl::StrCat(name, " gradients")));
  const size_t optimizer_bytes = bytes(s.optimizer_sharded());
  if (plan.offload_optimizer && !plan.offload_params) {
    SPW_ASSIGN_OR_RETURN(s.offload_grads,
                         Buffer::Allocate(optimizer_bytes, optimizer_tier,
                                          absl::StrCat(name, " offloaded gradients")));
  }
  if (!plan.external_optimizer_state) {
    SPW_ASSIGN_OR_RETURN(s.exp_avg, Buffer::Allocate(optimizer_bytes, optimizer_tier,
                                                     absl::StrCat(name, " Adam m")));
    SPW_ASSIGN_OR_RETURN(s.exp_avg_sq, Buffer::Allocate(optimizer_bytes, optimizer_tier,
                                                        absl::StrCat(name, " Adam v")));
  }
  if (plan.offload_optimizer && !plan.external_optimizer_state && !plan.offload_params) {
    SPW_ASSIGN_OR_RETURN(s.offload_master,
                         Buffer::Allocate(optimizer_bytes, optimizer_tier,
                                          absl::StrCat(name, " offloaded master parameters")));
  }
  if (!s.params_sharded()) s.live_params = s.params.as<float>();
  if (!s.grads_sharded()) s.live_grads = s.grads.as<float>();
  return s;
}

size_t UnitState::update_begin() const {
  return optimizer_sharded() ? std::min(shard.begin, numel()) : 0;
}

size_t UnitState::update_end() const {
  return optimizer_sharded() ? std::min(shard.end, numel()) : numel();
}

}  // namespace spillway
