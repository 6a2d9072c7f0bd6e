// zero_optimization.offload_optimizer.ratio (DeepSpeed's key; ZeRO-Offload++'s partial offload):
// which Units' optimizer state and step move to the CPU. The last Units are offloaded, from the
// last one backwards, until they hold at least `ratio` of all elements: their gradients are final
// first in the backward, so their CPU step overlaps the rest of it. The first Units, which the
// next forward needs first and whose gradients are final last, keep their optimizer in the
// backend, where their step is short.
#pragma once

#include <cstddef>
#include <span>

namespace spillway {

// The first offloaded Unit for `ratio` in [0, 1] of the elements `unit_numel` lists per Unit:
// 0 for 1 (every Unit), unit_numel.size() for 0 (none).
int FirstOffloadedUnit(std::span<const size_t> unit_numel, double ratio);

}  // namespace spillway
