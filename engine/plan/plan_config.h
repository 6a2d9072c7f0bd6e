// The memory planner's input for a parsed Config: the adapter between the config keys and the
// planner's PlanInput (engine/plan/memory_plan.h). Keys the config does not have yet keep the
// PlanInput defaults (fp32, fp32 optimizer state, no parameter or activation offload, no
// pools); callers may set them on the result.
#pragma once

#include "absl/status/statusor.h"
#include "engine/config/config.h"
#include "engine/plan/memory_plan.h"

namespace spillway {

// GPU memory the CUDA runtime, cuBLASLt and NCCL use beyond spillway's buffers (estimate).
inline constexpr size_t kGpuRuntimeReserveBytes = size_t{1} << 30;

// `world_size` ranks, `ranks_per_node` of them per node; the backend is trainer.backend.
// Pipelined configs (pipeline.stages > 1) are planned as if unpipelined: each rank holding
// every Unit, sharded over world_size / stages ranks (an upper bound on what a stage holds).
absl::StatusOr<PlanInput> PlanInputFromConfig(const Config& config, int world_size,
                                              int ranks_per_node);

}  // namespace spillway
