// Which contiguous range of Units each pipeline stage runs.
//
// Uniform: by count, the first (units % stages) stages one Unit more. Balanced: by cost, the
// split that minimises the largest stage's summed cost (ties: the earliest such split), found
// exactly by dynamic programming over (stage, first Unit).
#pragma once

#include <vector>

#include "absl/status/statusor.h"

namespace spillway::pipeline {

struct StagePartition {
  std::vector<int> first;  // stages + 1 entries: stage s runs Units [first[s], first[s + 1])
  int stages() const { return static_cast<int>(first.size()) - 1; }
  int begin(int stage) const { return first[stage]; }
  int end(int stage) const { return first[stage + 1]; }
};

// InvalidArgument unless 1 <= stages <= units.
absl::StatusOr<StagePartition> UniformPartition(int units, int stages);
// `cost[u]` >= 0 per Unit; InvalidArgument unless 1 <= stages <= cost.size().
absl::StatusOr<StagePartition> BalancedPartition(const std::vector<double>& cost, int stages);

}  // namespace spillway::pipeline
