#include "partitioner/shard.h"

#include <gtest/gtest.h>

#include <vector>

#include "partitioner/offload_split.h"

namespace spillway {
namespace {

// The shards of every rank tile the padded buffer exactly once and cover every element.
TEST(ShardTest, ShardsTileThePaddedBuffer) {
  for (size_t numel : {size_t{1}, size_t{7}, size_t{64}, size_t{1000003}}) {
    for (int world : {1, 2, 3, 4, 8}) {
      size_t next = 0, valid = 0;
      for (int rank = 0; rank < world; ++rank) {
        const ShardRange r = ShardOf(numel, world, rank);
        EXPECT_EQ(r.begin, next);
        EXPECT_EQ(r.end - r.begin, r.shard_numel);
        EXPECT_EQ(r.padded_numel, r.shard_numel * world);
        next = r.end;
        valid += r.valid_numel;
      }
      EXPECT_EQ(next, ShardOf(numel, world, 0).padded_numel);
      EXPECT_EQ(valid, numel) << numel << " elements over " << world << " ranks";
      EXPECT_LT(ShardOf(numel, world, 0).padded_numel - numel, static_cast<size_t>(world));
    }
  }
}

TEST(ShardTest, OneRankOwnsEverything) {
  const ShardRange r = ShardOf(12345, 1, 0);
  EXPECT_EQ(r.begin, 0u);
  EXPECT_EQ(r.end, 12345u);
  EXPECT_EQ(r.valid_numel, 12345u);
}

// offload_optimizer.ratio: the last Units, from the end, until they hold the share.
TEST(OffloadSplitTest, OffloadsTheLastUnitsUntilTheyHoldTheShare) {
  const std::vector<size_t> units = {40, 10, 10, 10, 30};  // 100 elements
  EXPECT_EQ(FirstOffloadedUnit(units, 1.0), 0);
  EXPECT_EQ(FirstOffloadedUnit(units, 0.0), 5);
  EXPECT_EQ(FirstOffloadedUnit(units, 0.3), 4);   // the last Unit holds exactly 30%
  EXPECT_EQ(FirstOffloadedUnit(units, 0.31), 3);  // at least the share: 40%
  EXPECT_EQ(FirstOffloadedUnit(units, 0.6), 1);
  EXPECT_EQ(FirstOffloadedUnit(units, 0.61), 0);
  EXPECT_EQ(FirstOffloadedUnit({}, 0.5), 0);
}

}  // namespace
}  // namespace spillway
