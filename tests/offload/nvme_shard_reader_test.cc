// NvmeShardReader on both engines: Units' shards written into an NvmeOptimizerState's master
// arrays come back exactly into each slot's staging, several reads in flight at once; misuse
// (a busy slot, a staging too small) and an injected EIO fail with a message naming the slot or
// the file, never a silent success.
#include "offload/nvme_shard_reader.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "offload/nvme_optimizer_state.h"
#include "tests/offload/offload_test_util.h"

namespace spillway::testing {
namespace {

using ::testing::HasSubstr;

const std::vector<size_t> kUnitNumels = {3, 1025, 5000, 1024};

class NvmeShardReaderTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    if (GetParam() == EngineKind::kUring && !UringAvailable().ok()) {
      GTEST_SKIP() << "io_uring is refused on this machine (" << UringAvailable() << ")";
    }
    IoOptions io;
    io.nvme_path = dir_.path();
    io.force_fallback = GetParam() == EngineKind::kPread;
    io.warn = warnings_.sink();
    auto state = NvmeOptimizerState::Create(io, kUnitNumels, 4096, 3, "reader_test");
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::move(state).value();
    for (size_t u = 0; u < kUnitNumels.size(); ++u) {
      std::vector<float> master(kUnitNumels[u]);
      for (size_t i = 0; i < master.size(); ++i) master[i] = 0.25f * i - 100.0f * u;
      ASSERT_TRUE(
          state_->WriteArray(static_cast<int>(u), NvmeOptimizerState::kMaster, master.data()).ok());
      masters_.push_back(std::move(master));
    }
  }

  std::unique_ptr<NvmeShardReader> Make(std::vector<size_t> slots, CompletionFilter filter = {}) {
    IoOptions io;
    io.nvme_path = dir_.path();
    io.force_fallback = GetParam() == EngineKind::kPread;
    io.completion_filter = std::move(filter);
    io.warn = warnings_.sink();
    std::vector<NvmeShardReader::Location> units;
    for (int u = 0; u < state_->num_units(); ++u) {
      units.push_back(
          {&state_->file(), state_->offset(u, NvmeOptimizerState::kMaster), state_->numel(u)});
    }
    auto reader = NvmeShardReader::Create(io, std::move(units), slots, Tier::kHost);
    EXPECT_TRUE(reader.ok()) << reader.status();
    return reader.ok() ? std::move(reader).value() : nullptr;
  }

  ScratchDir dir_;
  WarningLog warnings_;
  std::unique_ptr<NvmeOptimizerState> state_;
  std::vector<std::vector<float>> masters_;
};

TEST_P(NvmeShardReaderTest, ReadsEveryShardExactlyWithSeveralInFlight) {
  auto reader = Make({5000, 5000, 5000});
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->host_bytes(), 3 * NvmeBytesForFloats(5000));
  // Units 0-2 in flight together, then Unit 3 into the first free slot.
  for (int u = 0; u < 3; ++u) ASSERT_TRUE(reader->StartRead(u, u).ok());
  for (int u = 0; u < 3; ++u) {
    absl::StatusOr<const float*> shard = reader->FinishRead(u);
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ(std::memcmp(*shard, masters_[u].data(), masters_[u].size() * sizeof(float)), 0)
        << "unit " << u;
  }
  // Ready() turns true once the read has landed, without waiting (IoEngine::Done).
  EXPECT_TRUE(reader->Ready(0));
  ASSERT_TRUE(reader->StartRead(3, 0).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!reader->Ready(0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(reader->Ready(0));
  absl::StatusOr<const float*> shard = reader->FinishRead(0);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(std::memcmp(*shard, masters_[3].data(), masters_[3].size() * sizeof(float)), 0);
  const NvmeShardReader::Stats stats = reader->TakeStats();
  uint64_t want = 0;
  for (size_t n : kUnitNumels) want += NvmeBytesForFloats(n);
  EXPECT_EQ(stats.bytes, want);
  EXPECT_EQ(reader->TakeStats().bytes, 0u);
}

TEST_P(NvmeShardReaderTest, MisuseIsAnErrorNamingTheSlot) {
  auto reader = Make({1024, 5000});
  ASSERT_NE(reader, nullptr);
  EXPECT_THAT(std::string(reader->StartRead(2, 0).message()), HasSubstr("staging 0"));
  EXPECT_THAT(std::string(reader->FinishRead(1).status().message()), HasSubstr("staging 1"));
  ASSERT_TRUE(reader->StartRead(2, 1).ok());
  EXPECT_THAT(std::string(reader->StartRead(1, 1).message()), HasSubstr("busy"));
  EXPECT_TRUE(reader->FinishRead(1).ok());
}

TEST_P(NvmeShardReaderTest, InjectedReadErrorNamesTheFile) {
  auto reader = Make({5000}, [](const IoAttempt& attempt, int result) {
    return attempt.op == IoOp::kRead ? -EIO : result;
  });
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->StartRead(2, 0).ok());
  absl::StatusOr<const float*> shard = reader->FinishRead(0);
  ASSERT_FALSE(shard.ok());
  EXPECT_THAT(std::string(shard.status().message()), HasSubstr(state_->file().path()));
  // The slot is free again: a later read may retry.
  EXPECT_THAT(std::string(reader->FinishRead(0).status().message()), HasSubstr("no read"));
}

INSTANTIATE_TEST_SUITE_P(Engines, NvmeShardReaderTest,
                         ::testing::Values(EngineKind::kUring, EngineKind::kPread),
                         [](const auto& info) { return EngineName(info.param); });

}  // namespace
}  // namespace spillway::testing
