// ZeRO sharding math. A Unit's flat buffer of `numel` elements is padded to a multiple of
// `world_size` and split into equal shards; rank r owns [r * shard, (r + 1) * shard) of the
// padded buffer. The part of a shard past `numel` is padding (never a parameter).
#pragma once

#include <cstddef>

namespace spillway {

struct ShardRange {
  size_t shard_numel = 0;   // elements per shard, padding included (same on every rank)
  size_t padded_numel = 0;  // shard_numel * world_size
  size_t begin = 0;         // this rank's first element in the padded buffer
  size_t end = 0;           // one past its last element
  // Elements of this shard that are real (not padding): min(end, numel) - min(begin, numel).
  size_t valid_numel = 0;
};

// Requires world_size >= 1 and 0 <= rank < world_size.
ShardRange ShardOf(size_t numel, int world_size, int rank);

}  // namespace spillway
