#include "partitioner/shard.h"

#include <algorithm>

namespace spillway {

ShardRange ShardOf(size_t numel, int world_size, int rank) {
  const size_t world = static_cast<size_t>(world_size);
  ShardRange r;
  r.shard_numel = (numel + world - 1) / world;
  r.padded_numel = r.shard_numel * world;
  r.begin = r.shard_numel * static_cast<size_t>(rank);
  r.end = r.begin + r.shard_numel;
  r.valid_numel = std::min(r.end, numel) - std::min(r.begin, numel);
  return r;
}

}  // namespace spillway
