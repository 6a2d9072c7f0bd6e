#include "partitioner/offload_split.h"

namespace spillway {

int FirstOffloadedUnit(std::span<const size_t> unit_numel, double ratio) {
  double total = 0.0;
  for (size_t n : unit_numel) total += static_cast<double>(n);
  const double target = ratio * total;
  double offloaded = 0.0;
  int first = static_cast<int>(unit_numel.size());
  while (first > 0 && offloaded < target) {
    --first;
    offloaded += static_cast<double>(unit_numel[first]);
  }
  return first;
}

}  // namespace spillway
