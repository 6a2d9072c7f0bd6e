// Whether a memory plan fits the hardware, and the choice of placement for "auto".
//
// Checks, per tier: GPU (per rank, against the free memory of its GPU), pinned CPU and all CPU
// memory (per node: a rank's bytes times ranks_per_node, against MemAvailable), the buffers
// registered with io_uring (per process, against RLIMIT_MEMLOCK) and NVMe (per node, against
// the free space at nvme_path).
//
// "auto" placement: the candidates for offload_optimizer x offload_param are tried from the
// cheapest, by how many levels they move (none < cpu < nvme, summed; at equal sums the one with
// the optimizer nearer the GPU: parameters and optimizer in CPU memory before the optimizer on
// NVMe); the first that fits is chosen. Candidates the engine cannot build are refused by
// PlanMemory and skipped.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/plan/hardware.h"
#include "engine/plan/memory_plan.h"

namespace spillway {

struct TierCheck {
  std::string name;            // "gpu", "pinned cpu", "cpu (all)", "memlock", "nvme"
  size_t need = 0;             // per rank for gpu and memlock, per node otherwise
  std::optional<size_t> have;  // no value: none found
  std::string note;            // why `have` has no value
  size_t short_by() const { return have.has_value() ? (need > *have ? need - *have : 0) : need; }
};

struct FitReport {
  std::vector<TierCheck> checks;
  bool fits() const;
};

FitReport CheckFit(const MemoryPlan& plan, const Hardware& hw);

struct PlanResult {
  MemoryPlan plan;  // the chosen (or given) placement's plan
  FitReport fit;
  bool resolved_auto = false;   // a placement was "auto" and was chosen
  bool resolved_ratio = false;  // offload_ratio was "auto" and was chosen
  // Candidates tried for auto, in order, each "optimizer cpu, parameters none: short ...".
  std::vector<std::string> tried;
};

// Plans `input` on `hw`, resolving "auto" placements and, with offload_ratio_auto, each offloaded
// candidate's split by SplitThatFits (ratio 1 if no split fits). When no candidate fits, the
// result is the last one tried (the most offloaded), with its report.
absl::StatusOr<PlanResult> PlanToFit(const PlanInput& input, const Hardware& hw);

// The split of an offloaded config over the tiers that fits, if any: offload_optimizer.ratio
// (and, with compact state on NVMe, nvme_ratio) on a grid of 0.05, the most on the GPU first,
// then the least on NVMe; the other inputs as given.
std::optional<PlanInput> SplitThatFits(const PlanInput& input, const Hardware& hw);
inline constexpr int kSplitSteps = 20;  // SplitThatFits's grid: ratios 1/20, 2/20, ... 1

// ResourceExhausted for a result that does not fit: each short tier with bytes needed, bytes
// found and the difference, and a placement that would fit if there is one (another device, a
// split over the tiers by ratio and nvme_ratio, or activation checkpointing).
absl::Status NotFitError(const PlanResult& result, const Hardware& hw);

// `offload_optimizer "cpu", offload_param "none"`; a split shows as `"cpu" (ratio 0.4)`.
std::string PlacementText(const PlanInput& input);

}  // namespace spillway
