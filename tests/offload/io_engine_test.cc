#include "offload/io_engine.h"

#include <sys/resource.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "offload/uring_io_engine.h"
#include "tests/offload/offload_test_util.h"

namespace spillway::testing {
namespace {

using ::testing::HasSubstr;

constexpr size_t kMiB = size_t{1} << 20;

class IoEngineTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    if (GetParam() == EngineKind::kUring && !UringAvailable().ok()) {
      GTEST_SKIP() << "io_uring is refused on this machine (" << UringAvailable()
                   << "); the device machine has it";
    }
  }

  std::unique_ptr<IoEngine> Engine(IoOptions options = {}) {
    options.nvme_path = dir_.path();
    options.warn = warnings_.sink();
    auto engine = MakeEngine(GetParam(), std::move(options));
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? std::move(engine).value() : nullptr;
  }

  ScratchDir dir_;
  WarningLog warnings_;
};

// Requests of several chunks, from an engine buffer and from other aligned memory, at an
// offset, come back byte for byte; reads and writes of different requests overlap.
TEST_P(IoEngineTest, RoundTripAcrossChunks) {
  IoOptions options;
  options.queue_depth = 4;
  options.buffer_count = 2;
  options.buffer_size = 4 * kMiB;
  auto engine = Engine(options);
  ASSERT_NE(engine, nullptr);
  auto file = engine->CreateFile("roundtrip", 16 * kMiB);
  ASSERT_TRUE(file.ok()) << file.status();

  const size_t bytes = 3 * kMiB + 12288;  // three whole chunks and a partial one
  std::span<std::byte> registered = engine->buffer(0).first(bytes);
  FillRandom(registered, 1);
  Buffer other = RandomBuffer(bytes, 2);
  const uint64_t offset_a = 3 * 4096, offset_b = 8 * kMiB;
  auto write_a = engine->SubmitWrite(**file, offset_a, registered);
  auto write_b = engine->SubmitWrite(**file, offset_b, other.span());
  ASSERT_TRUE(write_a.ok() && write_b.ok()) << write_a.status() << write_b.status();
  ASSERT_TRUE(engine->Wait(*write_a).ok());
  ASSERT_TRUE(engine->Wait(*write_b).ok());

  Buffer back_a = *Buffer::Allocate(bytes, Tier::kHost, "read back");
  std::span<std::byte> back_b = engine->buffer(1).first(bytes);
  auto read_a = engine->SubmitRead(**file, offset_a, back_a.span());
  auto read_b = engine->SubmitRead(**file, offset_b, back_b);
  ASSERT_TRUE(read_a.ok() && read_b.ok());
  ASSERT_TRUE(engine->WaitAll().ok());
  EXPECT_TRUE(SameBytes(back_a.span(), registered));
  EXPECT_TRUE(SameBytes(back_b, other.span()));
}

TEST_P(IoEngineTest, ManyRequestsInFlight) {
  IoOptions options;
  options.queue_depth = 8;
  auto engine = Engine(options);
  ASSERT_NE(engine, nullptr);
  constexpr int kRequests = 24;
  constexpr size_t kBytes = kMiB + 8192;
  auto file = engine->CreateFile("many", kRequests * kBytes);
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<Buffer> data, back;
  for (int i = 0; i < kRequests; ++i) {
    data.push_back(RandomBuffer(kBytes, 100 + i));
    back.push_back(*Buffer::Allocate(kBytes, Tier::kHost, "back"));
    ASSERT_TRUE(engine->SubmitWrite(**file, i * kBytes, data.back().span()).ok());
  }
  ASSERT_TRUE(engine->WaitAll().ok());
  std::vector<IoEngine::Ticket> reads;
  for (int i = kRequests - 1; i >= 0; --i) {
    reads.push_back(*engine->SubmitRead(**file, i * kBytes, back[i].span()));
  }
  for (IoEngine::Ticket t : reads) ASSERT_TRUE(engine->Wait(t).ok());
  for (int i = 0; i < kRequests; ++i) EXPECT_TRUE(SameBytes(back[i].span(), data[i].span())) << i;
}

TEST_P(IoEngineTest, RejectsMisalignedAndOutOfRangeRequests) {
  auto engine = Engine();
  ASSERT_NE(engine, nullptr);
  auto file = engine->CreateFile("bounds", 64 * 1024);
  ASSERT_TRUE(file.ok()) << file.status();
  Buffer buffer = RandomBuffer(16 * 1024, 3);
  std::span<std::byte> s = buffer.span();

  auto misaligned_offset = engine->SubmitWrite(**file, 100, s.first(4096));
  EXPECT_EQ(misaligned_offset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(misaligned_offset.status().message()), HasSubstr((*file)->path()));
  EXPECT_EQ(engine->SubmitWrite(**file, 0, s.first(1000)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->SubmitRead(**file, 0, s.subspan(8, 4096)).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto past_end = engine->SubmitRead(**file, 56 * 1024, s);
  EXPECT_EQ(past_end.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(past_end.status().message()), HasSubstr("past the end"));

  auto empty = engine->SubmitRead(**file, 0, s.first(0));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(engine->Wait(*empty).ok());
  EXPECT_EQ(engine->Wait(*empty).code(), absl::StatusCode::kInvalidArgument) << "waited twice";
}

TEST_P(IoEngineTest, NvmePathIsRequiredForFiles) {
  IoOptions options;
  auto engine = MakeEngine(GetParam(), options);
  ASSERT_TRUE(engine.ok());
  auto file = (*engine)->CreateFile("x", 4096);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("nvme_path"));
}

INSTANTIATE_TEST_SUITE_P(Engines, IoEngineTest,
                         ::testing::Values(EngineKind::kUring, EngineKind::kPread),
                         [](const auto& info) { return EngineName(info.param); });

TEST(IoOptionsTest, OutOfRangeOptionsNameTheKey) {
  IoOptions o;
  o.block_size = 4096;
  EXPECT_THAT(std::string(ValidateIoOptions(o).message()), HasSubstr("block_size 4096"));
  o = IoOptions{};
  o.block_size = 16 * kMiB;
  EXPECT_FALSE(ValidateIoOptions(o).ok());
  o = IoOptions{};
  o.queue_depth = 0;
  EXPECT_THAT(std::string(ValidateIoOptions(o).message()), HasSubstr("queue_depth"));
  o = IoOptions{};
  o.buffer_count = 2;
  o.buffer_size = 1000;
  EXPECT_THAT(std::string(ValidateIoOptions(o).message()), HasSubstr("buffer_size"));
  o.buffer_size = 0;
  EXPECT_FALSE(ValidateIoOptions(o).ok());
  EXPECT_TRUE(ValidateIoOptions(IoOptions{}).ok());
  o = IoOptions{};
  o.queue_depth = 0;
  EXPECT_EQ(CreateIoEngine(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CreateIoEngineTest, PicksUringOrForcedFallback) {
  ScratchDir dir;
  WarningLog log;
  IoOptions options;
  options.nvme_path = dir.path();
  options.warn = log.sink();
  auto engine = CreateIoEngine(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  if (UringAvailable().ok()) {
    EXPECT_EQ((*engine)->name(), "io_uring");
    EXPECT_TRUE(log.lines.empty());
  } else {
    EXPECT_EQ((*engine)->name(), "pread");
    ASSERT_EQ(log.lines.size(), 1u);
    EXPECT_THAT(log.lines[0], HasSubstr("pread/pwrite"));
  }
  options.force_fallback = true;
  auto fallback = CreateIoEngine(options);
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ((*fallback)->name(), "pread");
}

TEST(CreateIoEngineTest, ChecksNvmePathUpFront) {
  IoOptions options;
  options.nvme_path = "/nonexistent/spillway/nvme";
  EXPECT_EQ(CreateIoEngine(options).status().code(), absl::StatusCode::kNotFound);
  options.nvme_path = "/proc";
  EXPECT_EQ(CreateIoEngine(options).status().code(), absl::StatusCode::kPermissionDenied);
}

// What one engine writes the other reads, both ways.
TEST(IoEngineEquivalenceTest, EnginesReadEachOthersWrites) {
  if (!UringAvailable().ok()) GTEST_SKIP() << "io_uring is refused here: " << UringAvailable();
  ScratchDir dir;
  IoOptions options;
  options.nvme_path = dir.path();
  auto uring = MakeEngine(EngineKind::kUring, options);
  auto pread = MakeEngine(EngineKind::kPread, options);
  ASSERT_TRUE(uring.ok() && pread.ok());
  const size_t bytes = 5 * kMiB + 4096;
  auto file = (*uring)->CreateFile("shared", 2 * bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  Buffer a = RandomBuffer(bytes, 7), b = RandomBuffer(bytes, 8);
  ASSERT_TRUE((*uring)->Write(**file, 0, a.span()).ok());
  ASSERT_TRUE((*pread)->Write(**file, bytes, b.span()).ok());
  Buffer a_back = *Buffer::Allocate(bytes, Tier::kHost, "a"),
         b_back = *Buffer::Allocate(bytes, Tier::kHost, "b");
  ASSERT_TRUE((*pread)->Read(**file, 0, a_back.span()).ok());
  ASSERT_TRUE((*uring)->Read(**file, bytes, b_back.span()).ok());
  EXPECT_TRUE(SameBytes(a_back.span(), a.span()));
  EXPECT_TRUE(SameBytes(b_back.span(), b.span()));
}

// Restores RLIMIT_MEMLOCK's soft limit when it goes out of scope.
class MemlockLimit {
 public:
  explicit MemlockLimit(rlim_t soft) {
    getrlimit(RLIMIT_MEMLOCK, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    ok_ = setrlimit(RLIMIT_MEMLOCK, &lowered) == 0;
  }
  ~MemlockLimit() { setrlimit(RLIMIT_MEMLOCK, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_;
  bool ok_ = false;
};

TEST(UringBuffersTest, RegistersWithinMemlockAndFallsBackAboveIt) {
  if (!UringAvailable().ok()) GTEST_SKIP() << "io_uring is refused here: " << UringAvailable();
  ScratchDir dir;
  IoOptions options;
  options.nvme_path = dir.path();
  options.buffer_count = 2;
  options.buffer_size = kMiB;
  {
    MemlockLimit limit(4 * kMiB);
    if (!limit.ok()) GTEST_SKIP() << "cannot set RLIMIT_MEMLOCK to 4 MiB here";
    WarningLog log;
    options.warn = log.sink();
    auto engine = UringIoEngine::Create(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    EXPECT_TRUE((*engine)->registered_buffers()) << (log.lines.empty() ? "" : log.lines[0]);
  }
  MemlockLimit limit(kMiB);
  if (!limit.ok()) GTEST_SKIP() << "cannot set RLIMIT_MEMLOCK to 1 MiB here";
  WarningLog log;
  options.warn = log.sink();
  auto engine = UringIoEngine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_FALSE((*engine)->registered_buffers());
  ASSERT_EQ(log.lines.size(), 1u);
  EXPECT_THAT(log.lines[0], HasSubstr("RLIMIT_MEMLOCK (1048576 bytes)"));
  EXPECT_THAT(log.lines[0], HasSubstr("2097152 bytes"));
  EXPECT_THAT(log.lines[0], HasSubstr("unregistered"));

  // Unregistered, the same buffers still move data exactly.
  auto file = (*engine)->CreateFile("unregistered", kMiB);
  ASSERT_TRUE(file.ok()) << file.status();
  FillRandom((*engine)->buffer(0), 9);
  ASSERT_TRUE((*engine)->Write(**file, 0, (*engine)->buffer(0)).ok());
  ASSERT_TRUE((*engine)->Read(**file, 0, (*engine)->buffer(1)).ok());
  EXPECT_TRUE(SameBytes((*engine)->buffer(0), (*engine)->buffer(1)));
}

}  // namespace
}  // namespace spillway::testing
