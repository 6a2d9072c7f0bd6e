// The tiled streaming pass over NVMe-resident optimizer state equals the same computation on
// in-memory arrays, bit for bit, on both engines.
#include "offload/tile_stream.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/adamw.h"
#include "tests/offload/offload_test_util.h"

namespace spillway::testing {
namespace {

using ::testing::HasSubstr;

std::vector<float> Floats(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> x(n);
  for (float& f : x) f = dist(rng);
  return x;
}

struct Case {
  size_t n;
  size_t tile_floats;
  int buffers_per_array;
};

class TileStreamTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    if (GetParam() == EngineKind::kUring && !UringAvailable().ok()) {
      GTEST_SKIP() << "io_uring is refused on this machine (" << UringAvailable()
                   << "); the device machine has it";
    }
  }

  void StartEngine(size_t tile_floats, int buffers, CompletionFilter filter = {}) {
    IoOptions options;
    options.nvme_path = dir_.path();
    options.queue_depth = 8;
    options.buffer_count = 3 * buffers;
    options.buffer_size = tile_floats * sizeof(float);
    options.completion_filter = std::move(filter);
    options.warn = warnings_.sink();  // registering may exceed a small RLIMIT_MEMLOCK
    auto engine = MakeEngine(GetParam(), std::move(options));
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(engine).value();
  }

  // Three files (param, m, v) holding `arrays`, staged through unregistered host memory.
  void MakeFiles(const std::vector<std::vector<float>>& arrays) {
    files_.clear();
    const char* names[] = {"param", "exp_avg", "exp_avg_sq"};
    for (size_t a = 0; a < arrays.size(); ++a) {
      const uint64_t bytes = NvmeBytesForFloats(arrays[a].size());
      auto file = engine_->CreateFile(names[a], bytes);
      ASSERT_TRUE(file.ok()) << file.status();
      Buffer staging = *Buffer::Allocate(bytes, Tier::kHost, "staging");
      std::memcpy(staging.data(), arrays[a].data(), arrays[a].size() * sizeof(float));
      ASSERT_TRUE(engine_->Write(**file, 0, staging.span()).ok());
      files_.push_back(std::move(file).value());
    }
  }

  std::vector<float> ReadBack(size_t a, size_t n) {
    Buffer staging = *Buffer::Allocate(NvmeBytesForFloats(n), Tier::kHost, "staging");
    EXPECT_TRUE(engine_->Read(*files_[a], 0, staging.span()).ok());
    std::vector<float> x(n);
    std::memcpy(x.data(), staging.data(), n * sizeof(float));
    return x;
  }

  std::vector<const NvmeFile*> FilePointers() const {
    std::vector<const NvmeFile*> p;
    for (const auto& f : files_) p.push_back(f.get());
    return p;
  }

  ScratchDir dir_;
  WarningLog warnings_;
  std::unique_ptr<IoEngine> engine_;
  std::vector<std::unique_ptr<NvmeFile>> files_;
};

// Two AdamW steps streamed over NVMe equal two steps over whole in-memory arrays, bitwise,
// for sizes that are not multiples of the tile, with 3 and 4 buffers per array.
TEST_P(TileStreamTest, AdamWOverNvmeEqualsInMemory) {
  const Case cases[] = {
      {1, 1024, 3},
      {1000, 1024, 3},
      {3 * 1024 + 17, 1024, 3},
      {10 * 4096 + 1, 4096, 4},
      {300000 + 3, 65536, 3},
      {1300000 + 5, 524288, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "n=" << c.n << " tile=" << c.tile_floats << " buffers=" << c.buffers_per_array);
    StartEngine(c.tile_floats, c.buffers_per_array);
    std::vector<float> param = Floats(c.n, 1, -1, 1), m = Floats(c.n, 2, -0.01f, 0.01f),
                       v = Floats(c.n, 3, 0, 1e-4f);
    MakeFiles({param, m, v});
    kernels::AdamWParams p;
    p.lr = 1e-3f;
    p.weight_decay = 0.1f;
    const TileStreamOptions options{c.tile_floats, c.buffers_per_array, 0};
    const std::vector<const NvmeFile*> files = FilePointers();
    for (int step = 1; step <= 2; ++step) {
      p.step = step;
      const std::vector<float> grad = Floats(c.n, 10 + step, -1, 1);
      auto stats = StreamTiles(
          *engine_, files, c.n, options, [&](size_t tile, float* const* t, size_t count) {
            kernels::cpu::AdamW(t[0], grad.data() + tile * c.tile_floats, t[1], t[2], count, p);
            return absl::OkStatus();
          });
      ASSERT_TRUE(stats.ok()) << stats.status();
      const size_t tiles = (c.n + c.tile_floats - 1) / c.tile_floats;
      EXPECT_EQ(stats->tiles, tiles);
      EXPECT_EQ(stats->bytes_read, stats->bytes_written);
      EXPECT_EQ(stats->bytes_read, 3 * ((tiles - 1) * c.tile_floats * 4 +
                                        NvmeBytesForFloats(c.n - (tiles - 1) * c.tile_floats)));
      EXPECT_GE(stats->total_s, stats->compute_s);
      kernels::cpu::AdamW(param.data(), grad.data(), m.data(), v.data(), c.n, p);
    }
    EXPECT_EQ(std::memcmp(ReadBack(0, c.n).data(), param.data(), c.n * 4), 0);
    EXPECT_EQ(std::memcmp(ReadBack(1, c.n).data(), m.data(), c.n * 4), 0);
    EXPECT_EQ(std::memcmp(ReadBack(2, c.n).data(), v.data(), c.n * 4), 0);
    files_.clear();
  }
}

TEST_P(TileStreamTest, EveryTileOnceInOrderAndPaddingKept) {
  const size_t n = 5 * 1024 + 100;
  StartEngine(1024, 3);
  std::vector<float> x = Floats(n + 924, 4, -1, 1);  // fills the file's last 4 KiB block
  MakeFiles({x});
  std::vector<std::pair<size_t, size_t>> seen;
  const std::vector<const NvmeFile*> files = FilePointers();
  auto stats = StreamTiles(*engine_, files, n, {1024, 3, 0},
                           [&](size_t tile, float* const* t, size_t count) {
                             seen.emplace_back(tile, count);
                             for (size_t i = 0; i < count; ++i) t[0][i] += 1.0f;
                             return absl::OkStatus();
                           });
  ASSERT_TRUE(stats.ok()) << stats.status();
  const std::vector<std::pair<size_t, size_t>> want = {{0, 1024}, {1, 1024}, {2, 1024},
                                                       {3, 1024}, {4, 1024}, {5, 100}};
  EXPECT_EQ(seen, want);
  const std::vector<float> back = ReadBack(0, n + 924);
  for (size_t i = 0; i < n + 924; ++i) {
    ASSERT_EQ(back[i], i < n ? x[i] + 1.0f : x[i]) << i;
  }
}

TEST_P(TileStreamTest, IoErrorStopsTheStreamAndDrains) {
  const size_t tile = 262144;  // 1 MiB tiles: each is one chunk
  std::atomic<bool> faults = false;
  StartEngine(tile, 3, [&](const IoAttempt& a, int result) {
    return faults && a.op == IoOp::kWrite && a.offset == 2 * (size_t{1} << 20) &&
                   a.path.find("exp_avg_sq") != absl::string_view::npos
               ? -EIO
               : result;
  });
  const size_t n = 6 * tile;
  MakeFiles({Floats(n, 5, -1, 1), Floats(n, 6, -1, 1), Floats(n, 7, -1, 1)});
  faults = true;
  size_t computed = 0;
  auto stats =
      StreamTiles(*engine_, FilePointers(), n, {tile, 3, 0}, [&](size_t, float* const*, size_t) {
        ++computed;
        return absl::OkStatus();
      });
  ASSERT_FALSE(stats.ok());
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr(files_[2]->path()));
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("Input/output error"));
  EXPECT_LT(computed, 6u) << "the stream stops at the failed write";
  EXPECT_TRUE(engine_->WaitAll().ok()) << "nothing is left in flight";
}

TEST_P(TileStreamTest, ComputeErrorIsReturned) {
  StartEngine(1024, 3);
  MakeFiles({Floats(4096, 8, -1, 1)});
  auto stats = StreamTiles(*engine_, FilePointers(), 4096, {1024, 3, 0},
                           [](size_t tile, float* const*, size_t) {
                             return tile == 1 ? absl::InternalError("bad tile") : absl::OkStatus();
                           });
  ASSERT_FALSE(stats.ok());
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("computing tile 1: bad tile"));
  EXPECT_TRUE(engine_->WaitAll().ok());
}

TEST_P(TileStreamTest, BadArgumentsSayWhatToChange) {
  StartEngine(1024, 3);
  MakeFiles({Floats(4096, 9, -1, 1), Floats(4096, 10, -1, 1)});
  auto noop = [](size_t, float* const*, size_t) { return absl::OkStatus(); };
  auto files = FilePointers();
  EXPECT_THAT(
      std::string(StreamTiles(*engine_, files, 4096, {1000, 3, 0}, noop).status().message()),
      HasSubstr("multiple of 1024"));
  EXPECT_THAT(
      std::string(StreamTiles(*engine_, files, 4096, {1024, 2, 0}, noop).status().message()),
      HasSubstr("at least 3"));
  EXPECT_THAT(
      std::string(StreamTiles(*engine_, files, 4096, {1024, 3, 4}, noop).status().message()),
      HasSubstr("buffer_count >= 10"));
  EXPECT_THAT(
      std::string(StreamTiles(*engine_, files, 4096, {2048, 3, 0}, noop).status().message()),
      HasSubstr("buffer_size >= 8192"));
  EXPECT_THAT(
      std::string(StreamTiles(*engine_, files, 5000, {1024, 3, 0}, noop).status().message()),
      HasSubstr("too few for 5000 floats"));
}

INSTANTIATE_TEST_SUITE_P(Engines, TileStreamTest,
                         ::testing::Values(EngineKind::kUring, EngineKind::kPread),
                         [](const auto& info) { return EngineName(info.param); });

}  // namespace
}  // namespace spillway::testing
