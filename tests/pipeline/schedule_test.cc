// Stage partitions and the GPipe / 1F1B action lists: their exact order on small cases, that
// every combination of stages and micro-batches runs without deadlock with messages in order,
// and that the bubble is the textbook (p - 1) / (m + p - 1).
#include "pipeline/schedule.h"

#include <gtest/gtest.h>

#include "pipeline/partition.h"

namespace spillway::pipeline {
namespace {

TEST(PartitionTest, UniformGivesTheFirstStagesTheExtraUnits) {
  absl::StatusOr<StagePartition> p = UniformPartition(7, 3);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, (std::vector<int>{0, 3, 5, 7}));
  EXPECT_FALSE(UniformPartition(3, 4).ok());
  EXPECT_FALSE(UniformPartition(3, 0).ok());
}

TEST(PartitionTest, BalancedMinimisesTheLargestStage) {
  // A cheap embedding, four equal blocks, an expensive head.
  absl::StatusOr<StagePartition> p = BalancedPartition({0.1, 1, 1, 1, 1, 2}, 3);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, (std::vector<int>{0, 3, 5, 6}));  // costs 2.1, 2, 2
  // Equal costs: the same as uniform where that is optimal.
  absl::StatusOr<StagePartition> even = BalancedPartition({1, 1, 1, 1}, 2);
  ASSERT_TRUE(even.ok());
  EXPECT_EQ(even->first, (std::vector<int>{0, 2, 4}));
  absl::StatusOr<StagePartition> all = BalancedPartition({5, 1, 1}, 3);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->first, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_FALSE(BalancedPartition({1, 1}, 3).ok());
}

TEST(ScheduleTest, GPipeRunsAllForwardsThenAllBackwards) {
  EXPECT_EQ(ActionsToString(StageActions(Schedule::kGPipe, 2, 3, 0)),
            "F0 >a0 F1 >a1 F2 >a2 <g0 B0 <g1 B1 <g2 B2");
  EXPECT_EQ(ActionsToString(StageActions(Schedule::kGPipe, 2, 3, 1)),
            "<a0 F0 <a1 F1 <a2 F2 B0 >g0 B1 >g1 B2 >g2");
}

TEST(ScheduleTest, OneFOneBWarmsUpThenAlternates) {
  EXPECT_EQ(ActionsToString(StageActions(Schedule::kOneFOneB, 3, 4, 0)),
            "F0 >a0 F1 >a1 F2 >a2 <g0 B0 F3 >a3 <g1 B1 <g2 B2 <g3 B3");
  EXPECT_EQ(ActionsToString(StageActions(Schedule::kOneFOneB, 3, 4, 1)),
            "<a0 F0 >a0 <a1 F1 >a1 <g0 B0 >g0 <a2 F2 >a2 <g1 B1 >g1 <a3 F3 >a3 <g2 B2 >g2 "
            "<g3 B3 >g3");
  EXPECT_EQ(ActionsToString(StageActions(Schedule::kOneFOneB, 3, 4, 2)),
            "<a0 F0 B0 >g0 <a1 F1 B1 >g1 <a2 F2 B2 >g2 <a3 F3 B3 >g3");
  EXPECT_EQ(MaxInFlight(StageActions(Schedule::kOneFOneB, 3, 4, 0)), 3);
  EXPECT_EQ(MaxInFlight(StageActions(Schedule::kOneFOneB, 3, 4, 2)), 1);
  EXPECT_EQ(MaxInFlight(StageActions(Schedule::kGPipe, 3, 4, 2)), 4);
}

TEST(ScheduleTest, EveryShapeRunsWithoutDeadlock) {
  for (Schedule schedule : {Schedule::kGPipe, Schedule::kOneFOneB}) {
    for (int p = 1; p <= 6; ++p) {
      for (int m = 1; m <= 9; ++m) {
        absl::StatusOr<SimulatedRun> run = Simulate(schedule, p, m, 1.0, 2.0);
        ASSERT_TRUE(run.ok()) << run.status() << " p " << p << " m " << m;
        for (int s = 0; s < p; ++s) {
          // Every micro-batch's forward and backward, plus the recomputed forwards.
          EXPECT_GE(run->busy[s], m * 3.0);
        }
      }
    }
  }
}

// With free forwards (so recomputation costs nothing) both schedules take m + p - 1 backward
// slots: utilization m / (m + p - 1), the bubble (p - 1) / (m + p - 1).
TEST(ScheduleTest, BubbleIsTheTextbookOne) {
  for (Schedule schedule : {Schedule::kGPipe, Schedule::kOneFOneB}) {
    for (int p : {2, 4}) {
      for (int m : {4, 8, 16}) {
        absl::StatusOr<SimulatedRun> run = Simulate(schedule, p, m, 0.0, 1.0);
        ASSERT_TRUE(run.ok()) << run.status();
        EXPECT_DOUBLE_EQ(run->makespan, m + p - 1.0);
        EXPECT_NEAR(1.0 - run->Utilization(), (p - 1.0) / (m + p - 1.0), 1e-12);
      }
    }
  }
}

// 1F1B's last stage runs each backward right after its forward: no recomputation there.
TEST(ScheduleTest, OneFOneBRecomputesOnlyBeforeTheLastStage) {
  absl::StatusOr<SimulatedRun> one = Simulate(Schedule::kOneFOneB, 4, 8, 1.0, 2.0);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->recomputes, 3 * 8);
  absl::StatusOr<SimulatedRun> gpipe = Simulate(Schedule::kGPipe, 4, 8, 1.0, 2.0);
  ASSERT_TRUE(gpipe.ok());
  EXPECT_EQ(gpipe->recomputes, 4 * 8);
}

}  // namespace
}  // namespace spillway::pipeline
