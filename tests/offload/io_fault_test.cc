// Injected faults (IoOptions::completion_filter) on both engines: short I/O, -EAGAIN and
// -EINTR are resubmitted and the data comes back exact; -EIO and -ENOSPC fail the request with
// a message naming the file, offset and length; a failed request never reports success.
#include <atomic>
#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "offload/io_engine.h"
#include "tests/offload/offload_test_util.h"

namespace spillway::testing {
namespace {

using ::testing::HasSubstr;

constexpr size_t kMiB = size_t{1} << 20;

class IoFaultTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    if (GetParam() == EngineKind::kUring && !UringAvailable().ok()) {
      GTEST_SKIP() << "io_uring is refused on this machine (" << UringAvailable()
                   << "); the device machine has it";
    }
  }

  // An engine whose completions pass through `filter`, and a file of `bytes` on it.
  void Start(CompletionFilter filter, size_t bytes) {
    IoOptions options;
    options.nvme_path = dir_.path();
    options.queue_depth = 4;
    options.completion_filter = std::move(filter);
    auto engine = MakeEngine(GetParam(), std::move(options));
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(engine).value();
    auto file = engine_->CreateFile("faults", bytes);
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::move(file).value();
  }

  // Writes `data` at `offset`, reads it back into a fresh buffer; the statuses and the data.
  struct RoundTrip {
    absl::Status write, read;
    Buffer back;
  };
  RoundTrip WriteThenRead(const Buffer& data, uint64_t offset) {
    RoundTrip r;
    r.write = engine_->Write(*file_, offset, data.span());
    r.back = *Buffer::Allocate(data.bytes(), Tier::kHost, "read back");
    r.read = engine_->Read(*file_, offset, r.back.span());
    return r;
  }

  ScratchDir dir_;
  std::unique_ptr<IoEngine> engine_;
  std::unique_ptr<NvmeFile> file_;
};

TEST_P(IoFaultTest, ShortReadsAndWritesAreResubmittedForTheRest) {
  std::atomic<int> shortened = 0;
  // First attempts move only a third (not a whole number of 4 KiB blocks), retries a half.
  Start(
      [&](const IoAttempt& a, int result) {
        if (result <= 8192) return result;
        ++shortened;
        return a.retry == 0 ? result / 3 : result / 2;
      },
      8 * kMiB);
  const Buffer data = RandomBuffer(3 * kMiB + 8192, 11);
  RoundTrip r = WriteThenRead(data, 4096);
  ASSERT_TRUE(r.write.ok()) << r.write;
  ASSERT_TRUE(r.read.ok()) << r.read;
  EXPECT_TRUE(SameBytes(r.back.span(), data.span()));
  EXPECT_GT(shortened.load(), 16);
}

TEST_P(IoFaultTest, EagainAndEintrAreResubmitted) {
  std::atomic<int> injected = 0;
  Start(
      [&](const IoAttempt& a, int result) {
        if (a.retry >= 3) return result;
        ++injected;
        return a.retry % 2 == 0 ? -EAGAIN : -EINTR;
      },
      8 * kMiB);
  const Buffer data = RandomBuffer(5 * kMiB, 12);
  RoundTrip r = WriteThenRead(data, 0);
  ASSERT_TRUE(r.write.ok()) << r.write;
  ASSERT_TRUE(r.read.ok()) << r.read;
  EXPECT_TRUE(SameBytes(r.back.span(), data.span()));
  EXPECT_EQ(injected.load(), 2 * 5 * 3);  // 5 chunks each way, 3 refusals each
}

TEST_P(IoFaultTest, EioFailsTheRequestAndNamesFileOffsetLength) {
  const uint64_t bad = 2 * kMiB;
  Start([&](const IoAttempt& a,
            int result) { return a.op == IoOp::kWrite && a.offset == bad ? -EIO : result; },
        8 * kMiB);
  const Buffer data = RandomBuffer(4 * kMiB, 13);
  const absl::Status write = engine_->Write(*file_, 0, data.span());
  ASSERT_FALSE(write.ok());
  const std::string message(write.message());
  EXPECT_THAT(message,
              HasSubstr("NVMe write of 1048576 bytes at offset 2097152 of " + file_->path()));
  EXPECT_THAT(message, HasSubstr("Input/output error"));
  EXPECT_THAT(message, HasSubstr("dmesg"));
  // The engine goes on: other requests are unaffected.
  RoundTrip r = WriteThenRead(data, 4 * kMiB);
  EXPECT_TRUE(r.write.ok() && r.read.ok()) << r.write << r.read;
  EXPECT_TRUE(SameBytes(r.back.span(), data.span()));
}

TEST_P(IoFaultTest, EnospcIsResourceExhaustedWithAHint) {
  Start([](const IoAttempt& a, int result) { return a.op == IoOp::kWrite ? -ENOSPC : result; },
        kMiB);
  const Buffer data = RandomBuffer(kMiB, 14);
  const absl::Status write = engine_->Write(*file_, 0, data.span());
  ASSERT_EQ(write.code(), absl::StatusCode::kResourceExhausted) << write;
  EXPECT_THAT(std::string(write.message()), HasSubstr(file_->path()));
  EXPECT_THAT(std::string(write.message()), HasSubstr("set nvme_path to a larger disk"));
}

TEST_P(IoFaultTest, EndlessEagainGivesUp) {
  Start([](const IoAttempt&, int) { return -EAGAIN; }, kMiB);
  const Buffer data = RandomBuffer(kMiB, 15);
  const absl::Status write = engine_->Write(*file_, 0, data.span());
  ASSERT_EQ(write.code(), absl::StatusCode::kUnavailable) << write;
  EXPECT_THAT(std::string(write.message()), HasSubstr("no progress"));
}

// Random faults of every kind over many overlapping requests: every request either succeeds
// with exact data or fails with an error that names the file. Never a silent corruption.
TEST_P(IoFaultTest, RandomFaultsNeverCorruptSilently) {
  std::atomic<bool> faults = true;
  std::mt19937 rng(42);  // used under the engine's lock, one call at a time
  Start(
      [&](const IoAttempt& a, int result) {
        if (!faults || result <= 0) return result;
        const int dice = static_cast<int>(rng() % 100);
        if (dice < 15) return static_cast<int>(rng() % result);
        if (dice < 25) return -EAGAIN;
        if (dice < 30) return -EINTR;
        if (dice < 33) return -EIO;
        if (dice < 35) return -ENOSPC;
        return result;
      },
      64 * kMiB);
  constexpr int kRequests = 24;
  constexpr size_t kBytes = 2 * kMiB + 4096 * 5;
  std::vector<Buffer> data;
  std::vector<IoEngine::Ticket> tickets;
  for (int i = 0; i < kRequests; ++i) {
    data.push_back(RandomBuffer(kBytes, 200 + i));
    tickets.push_back(*engine_->SubmitWrite(*file_, i * kBytes, data.back().span()));
  }
  std::vector<int> failed_writes;
  for (int i = 0; i < kRequests; ++i) {
    const absl::Status s = engine_->Wait(tickets[i]);
    if (!s.ok()) {
      EXPECT_THAT(std::string(s.message()), HasSubstr(file_->path()));
      failed_writes.push_back(i);
    }
  }
  faults = false;
  for (int i : failed_writes) ASSERT_TRUE(engine_->Write(*file_, i * kBytes, data[i].span()).ok());
  faults = true;

  std::vector<Buffer> back;
  tickets.clear();
  for (int i = 0; i < kRequests; ++i) {
    back.push_back(*Buffer::Allocate(kBytes, Tier::kHost, "back"));
    tickets.push_back(*engine_->SubmitRead(*file_, i * kBytes, back.back().span()));
  }
  int failed_reads = 0;
  for (int i = 0; i < kRequests; ++i) {
    const absl::Status s = engine_->Wait(tickets[i]);
    if (s.ok()) {
      EXPECT_TRUE(SameBytes(back[i].span(), data[i].span())) << "request " << i;
    } else {
      EXPECT_THAT(std::string(s.message()), HasSubstr(file_->path()));
      ++failed_reads;
    }
  }
  EXPECT_GT(failed_writes.size() + failed_reads, 0u) << "the dice should hit EIO/ENOSPC";
  EXPECT_LT(failed_reads, kRequests) << "most reads should succeed";
}

INSTANTIATE_TEST_SUITE_P(Engines, IoFaultTest,
                         ::testing::Values(EngineKind::kUring, EngineKind::kPread),
                         [](const auto& info) { return EngineName(info.param); });

}  // namespace
}  // namespace spillway::testing
