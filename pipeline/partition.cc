#include "pipeline/partition.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace spillway::pipeline {
namespace {

absl::Status CheckStages(int units, int stages) {
  if (stages < 1 || stages > units) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline.stages: ", stages, " stages for ",
                                                   units, " Units; need 1 to ", units));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StagePartition> UniformPartition(int units, int stages) {
  if (absl::Status s = CheckStages(units, stages); !s.ok()) return s;
  StagePartition p;
  p.first.push_back(0);
  for (int s = 0; s < stages; ++s) {
    p.first.push_back(p.first.back() + units / stages + (s < units % stages ? 1 : 0));
  }
  return p;
}

absl::StatusOr<StagePartition> BalancedPartition(const std::vector<double>& cost, int stages) {
  const int n = static_cast<int>(cost.size());
  if (absl::Status s = CheckStages(n, stages); !s.ok()) return s;
  std::vector<double> prefix(n + 1, 0.0);
  for (int u = 0; u < n; ++u) prefix[u + 1] = prefix[u] + cost[u];
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[k][u]: the smallest largest-stage cost splitting Units [u, n) into k non-empty stages.
  std::vector<std::vector<double>> best(stages + 1, std::vector<double>(n + 1, kInf));
  std::vector<std::vector<int>> cut(stages + 1, std::vector<int>(n + 1, -1));
  best[0][n] = 0.0;
  for (int k = 1; k <= stages; ++k) {
    for (int u = n - k; u >= 0; --u) {
      for (int v = u + 1; v <= n - (k - 1); ++v) {
        const double worst = std::max(prefix[v] - prefix[u], best[k - 1][v]);
        if (worst < best[k][u]) {
          best[k][u] = worst;
          cut[k][u] = v;
        }
      }
    }
  }
  StagePartition p;
  p.first.push_back(0);
  for (int k = stages; k >= 1; --k) p.first.push_back(cut[k][p.first.back()]);
  return p;
}

}  // namespace spillway::pipeline
