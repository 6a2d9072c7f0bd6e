// NvmeShardReader on both engines: Units' shards written into an NvmeOptimizerState's master
// arrays come back exactly into each slot's staging, several reads in flight at once; misuse
// (a busy slot, a staging too small) and an injected EIO fail with a message naming the slot or
// the file, never a silent success. The cache (offload_param.max_in_cpu) serves the shards read
// earlier without I/O, exactly, until invalidated, evicting the least recently used.
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

  std::unique_ptr<NvmeShardReader> Make(std::vector<size_t> slots, CompletionFilter filter = {},
                                        int cache_count = 0, size_t cache_numel = 0) {
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
    auto reader =
        NvmeShardReader::Create(io, std::move(units), slots, Tier::kHost, cache_count, cache_numel);
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

// Reads one shard into `slot` and checks its floats; returns the bytes it read from the file.
uint64_t ReadAndCheck(NvmeShardReader& reader, int unit, int slot,
                      const std::vector<std::vector<float>>& masters) {
  EXPECT_TRUE(reader.StartRead(unit, slot).ok());
  absl::StatusOr<const float*> shard = reader.FinishRead(slot);
  EXPECT_TRUE(shard.ok()) << shard.status();
  if (shard.ok()) {
    EXPECT_EQ(std::memcmp(*shard, masters[unit].data(), masters[unit].size() * sizeof(float)), 0)
        << "unit " << unit;
  }
  return reader.TakeStats().bytes;
}

TEST_P(NvmeShardReaderTest, CacheServesEarlierShardsExactlyUntilInvalidated) {
  auto reader = Make({5000, 5000}, {}, /*cache_count=*/2, /*cache_numel=*/5000);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->cache_count(), 2);
  EXPECT_EQ(reader->cache_bytes(), 2 * NvmeBytesForFloats(5000));
  EXPECT_EQ(reader->host_bytes(), 4 * NvmeBytesForFloats(5000));
  // Units 1, 2, 3 through slot 0: 1 and 2 move into the cache as the slot is reused.
  for (int u = 1; u <= 3; ++u) {
    EXPECT_EQ(ReadAndCheck(*reader, u, 0, masters_), NvmeBytesForFloats(kUnitNumels[u])) << u;
  }
  // The backward's order: 3 is still in slot 0, 2 and 1 come from the cache into slot 1.
  ASSERT_TRUE(reader->StartRead(3, 0).ok());
  EXPECT_TRUE(reader->Ready(0));
  ASSERT_TRUE(reader->FinishRead(0).ok());
  EXPECT_EQ(reader->TakeStats().cached_bytes, NvmeBytesForFloats(kUnitNumels[3]));
  EXPECT_EQ(ReadAndCheck(*reader, 2, 1, masters_), 0u);
  EXPECT_EQ(ReadAndCheck(*reader, 1, 1, masters_), 0u);
  // The cache holds 2 (given back by slot 1); 0 is read into slot 1, whose 1 takes the free
  // entry; then 2 and 1 come back from the cache into slot 0, which gives 3 and then 2 back.
  EXPECT_EQ(ReadAndCheck(*reader, 0, 1, masters_), NvmeBytesForFloats(kUnitNumels[0]));
  EXPECT_EQ(ReadAndCheck(*reader, 2, 0, masters_), 0u);
  EXPECT_EQ(ReadAndCheck(*reader, 1, 0, masters_), 0u);
  // Both entries are full (3, then 2, kept in that order): a miss evicts the least recently
  // kept. Reading 0 into slot 0 evicts 3 and keeps 1; reading 3 again costs I/O and evicts 2.
  EXPECT_EQ(ReadAndCheck(*reader, 0, 0, masters_), NvmeBytesForFloats(kUnitNumels[0]));
  EXPECT_EQ(ReadAndCheck(*reader, 3, 0, masters_), NvmeBytesForFloats(kUnitNumels[3]));
  EXPECT_EQ(ReadAndCheck(*reader, 1, 1, masters_), 0u);
  // New masters: nothing kept is used again.
  reader->Invalidate();
  for (int u : {3, 2, 1}) {
    EXPECT_EQ(ReadAndCheck(*reader, u, u % 2, masters_), NvmeBytesForFloats(kUnitNumels[u])) << u;
  }
}

TEST_P(NvmeShardReaderTest, AFailedReadIsNotKept) {
  bool fail = true;
  auto reader = Make(
      {5000},
      [&](const IoAttempt& attempt, int result) {
        return attempt.op == IoOp::kRead && fail ? -EIO : result;
      },
      /*cache_count=*/1, /*cache_numel=*/5000);
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->StartRead(2, 0).ok());
  EXPECT_FALSE(reader->FinishRead(0).ok());
  reader->TakeStats();
  fail = false;
  EXPECT_EQ(ReadAndCheck(*reader, 2, 0, masters_), NvmeBytesForFloats(kUnitNumels[2]));
  EXPECT_EQ(NvmeShardReader::CacheCount(0, 5000, 3), 0);
  EXPECT_EQ(NvmeShardReader::CacheCount(9999, 5000, 3), 1);
  EXPECT_EQ(NvmeShardReader::CacheCount(int64_t{1} << 40, 5000, 3), 3);
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
