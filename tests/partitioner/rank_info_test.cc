#include "partitioner/rank_info.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace spillway {
namespace {

constexpr const char* kAllVariables[] = {"OMPI_COMM_WORLD_RANK",
                                         "OMPI_COMM_WORLD_SIZE",
                                         "OMPI_COMM_WORLD_LOCAL_RANK",
                                         "OMPI_COMM_WORLD_LOCAL_SIZE",
                                         "SLURM_PROCID",
                                         "SLURM_NTASKS",
                                         "SLURM_LOCALID",
                                         "SLURM_NTASKS_PER_NODE",
                                         "SLURM_TASKS_PER_NODE",
                                         "RANK",
                                         "WORLD_SIZE",
                                         "LOCAL_RANK",
                                         "LOCAL_WORLD_SIZE"};

// Clears every launcher variable (this test may itself run under mpirun or srun) and restores
// them afterwards.
class RankInfoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kAllVariables) {
      if (const char* value = std::getenv(name)) saved_[name] = value;
      unsetenv(name);
    }
  }
  void TearDown() override {
    for (const char* name : kAllVariables) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }
  static void Set(const std::map<std::string, std::string>& vars) {
    for (const auto& [name, value] : vars) setenv(name.c_str(), value.c_str(), 1);
  }
  static void ExpectInvalid(const std::string& variable) {
    const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(info.status().message().find(variable), absl::string_view::npos) << info.status();
  }

 private:
  std::map<std::string, std::string> saved_;
};

TEST_F(RankInfoTest, NoLauncherIsOneRank) {
  const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(*info, (RankInfo{0, 1, 0, 1}));
}

TEST_F(RankInfoTest, OpenMpi) {
  Set({{"OMPI_COMM_WORLD_RANK", "5"},
       {"OMPI_COMM_WORLD_SIZE", "8"},
       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
       {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(*info, (RankInfo{5, 8, 1, 4}));
}

TEST_F(RankInfoTest, OpenMpiWinsOverSlurmAndTorchrun) {
  Set({{"OMPI_COMM_WORLD_RANK", "1"},
       {"OMPI_COMM_WORLD_SIZE", "2"},
       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
       {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
       {"SLURM_PROCID", "0"},
       {"SLURM_NTASKS", "1"},
       {"RANK", "0"}});
  const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(*info, (RankInfo{1, 2, 1, 2}));
}

TEST_F(RankInfoTest, SlurmWithNtasksPerNode) {
  Set({{"SLURM_PROCID", "6"},
       {"SLURM_NTASKS", "8"},
       {"SLURM_LOCALID", "2"},
       {"SLURM_NTASKS_PER_NODE", "4"},
       {"SLURM_TASKS_PER_NODE", "garbage"},
       {"RANK", "0"}});
  const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(*info, (RankInfo{6, 8, 2, 4}));
}

TEST_F(RankInfoTest, SlurmTasksPerNodeForms) {
  Set({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "1"}});
  for (const auto& [text, expected] :
       std::map<std::string, int>{{"2(x3)", 2}, {"6", 6}, {"3(x2)", 3}}) {
    setenv("SLURM_TASKS_PER_NODE", text.c_str(), 1);
    const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
    ASSERT_TRUE(info.ok()) << text << ": " << info.status();
    EXPECT_EQ(*info, (RankInfo{3, 6, 1, expected})) << text;
  }
}

TEST_F(RankInfoTest, SlurmRejectsUnevenOrMalformedTasksPerNode) {
  Set({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "0"}});
  for (const char* text : {"2(x3),1", "2(x)", "2(3)", "x", "2(x3", "(x3)", ""}) {
    setenv("SLURM_TASKS_PER_NODE", text, 1);
    ExpectInvalid("SLURM_TASKS_PER_NODE");
  }
  unsetenv("SLURM_TASKS_PER_NODE");
  ExpectInvalid("SLURM_TASKS_PER_NODE");
}

TEST_F(RankInfoTest, Torchrun) {
  Set({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "3"}, {"LOCAL_WORLD_SIZE", "4"}});
  const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(*info, (RankInfo{3, 4, 3, 4}));
}

TEST_F(RankInfoTest, NonNumbersNameTheVariable) {
  Set({{"RANK", "0"}, {"WORLD_SIZE", "four"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "1"}});
  ExpectInvalid("WORLD_SIZE");
  Set({{"WORLD_SIZE", "4"}, {"LOCAL_RANK", "-1"}});
  ExpectInvalid("LOCAL_RANK");
  Set({{"LOCAL_RANK", "1.5"}});
  ExpectInvalid("LOCAL_RANK");
  Set({{"LOCAL_RANK", "99999999999"}});
  ExpectInvalid("LOCAL_RANK");
}

TEST_F(RankInfoTest, MissingValueNamesTheVariable) {
  Set({{"OMPI_COMM_WORLD_RANK", "0"},
       {"OMPI_COMM_WORLD_SIZE", "2"},
       {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}});
  ExpectInvalid("OMPI_COMM_WORLD_LOCAL_SIZE");
}

TEST_F(RankInfoTest, InconsistentValuesNameTheVariable) {
  Set({{"OMPI_COMM_WORLD_RANK", "2"},
       {"OMPI_COMM_WORLD_SIZE", "2"},
       {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
       {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}});
  ExpectInvalid("OMPI_COMM_WORLD_RANK");
  Set({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  ExpectInvalid("OMPI_COMM_WORLD_LOCAL_RANK");
  Set({{"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}});
  ExpectInvalid("OMPI_COMM_WORLD_LOCAL_SIZE");
  Set({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "0"}});
  ExpectInvalid("OMPI_COMM_WORLD_RANK");
}

RankInfo Local(int local_rank, int local_world_size) {
  return RankInfo{local_rank, local_world_size, local_rank, local_world_size};
}

TEST(GpuForRankTest, OneGpuPerRankIsTheLocalRanks) {
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(GpuForRank(Local(r, 4), 8, /*may_share=*/false).value(), r);
    EXPECT_EQ(GpuForRank(Local(r, 4), 4, /*may_share=*/true).value(), r);
  }
}

TEST(GpuForRankTest, SharingStagesFillEachGpuInTurn) {
  std::vector<int> gpus;
  for (int r = 0; r < 4; ++r) gpus.push_back(GpuForRank(Local(r, 4), 2, true).value());
  EXPECT_EQ(gpus, (std::vector<int>{0, 0, 1, 1}));
  gpus.clear();
  for (int r = 0; r < 3; ++r) gpus.push_back(GpuForRank(Local(r, 3), 2, true).value());
  EXPECT_EQ(gpus, (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(GpuForRank(Local(1, 2), 1, true).value(), 0);
}

TEST(GpuForRankTest, RankWithoutGpuIsAnError) {
  const absl::StatusOr<int> gpu = GpuForRank(Local(2, 3), 2, /*may_share=*/false);
  ASSERT_FALSE(gpu.ok());
  EXPECT_EQ(gpu.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(gpu.status().message().find("local rank 2 has no GPU (this node has 2)"),
            std::string::npos)
      << gpu.status();
  EXPECT_EQ(GpuForRank(Local(0, 2), 2, false).value(), 0);  // ranks that have one go on
  EXPECT_FALSE(GpuForRank(Local(0, 2), 0, /*may_share=*/true).ok());
}

}  // namespace
}  // namespace spillway
