// Text reports of a memory plan: the `spillway plan` table and the trainer's start-up lines.
#pragma once

#include <string>
#include <vector>

#include "engine/plan/fit.h"
#include "engine/plan/hardware.h"
#include "engine/plan/memory_plan.h"

namespace spillway {

// One line per item (tier, bytes, bytes per parameter), the activations with and without
// checkpointing, the tier table (need, have, short by), the auto candidates tried and the
// verdict (with the chosen placement for auto).
std::string FormatPlan(const PlanResult& result, const Hardware& hw);

// The start-up report's memory lines: parameters, gradients, optimizer state and activations
// per micro-batch (with and without checkpointing), each split by tier; then totals per tier.
std::vector<std::string> FormatStartupMemory(const MemoryPlan& plan);

}  // namespace spillway
