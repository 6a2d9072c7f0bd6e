#include "engine/data/batch_loader.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace spillway {
namespace {

// Token i is i, so a row's first input identifies its window: window = inputs[0] / T.
std::shared_ptr<const TokenData> CountingData(size_t n) {
  std::vector<uint32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), 0u);
  absl::StatusOr<TokenData> data =
      TokenData::FromVector(std::move(tokens), static_cast<uint32_t>(n), "counting data");
  EXPECT_TRUE(data.ok()) << data.status();
  return std::make_shared<const TokenData>(std::move(data).value());
}

BatchLoader MakeLoader(std::shared_ptr<const TokenData> data, int64_t batch, int64_t seq_len,
                       uint64_t seed, int world = 1, int rank = 0, bool shuffle = true) {
  BatchLoaderOptions options;
  options.batch_size = batch;
  options.seq_len = seq_len;
  options.world_size = world;
  options.rank = rank;
  options.seed = seed;
  options.shuffle = shuffle;
  absl::StatusOr<BatchLoader> loader = BatchLoader::Create(std::move(data), options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  return std::move(loader).value();
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  bool operator==(const Batch&) const = default;
};

Batch NextBatch(BatchLoader& loader) {
  const size_t n = static_cast<size_t>(loader.batch_size() * loader.seq_len());
  Batch batch{std::vector<int32_t>(n, -1), std::vector<int32_t>(n, -1)};
  loader.Next(batch.inputs.data(), batch.targets.data());
  return batch;
}

// The windows of the rows of the next `batches` batches, in order.
std::vector<int64_t> RowWindows(BatchLoader& loader, int batches) {
  std::vector<int64_t> windows;
  for (int i = 0; i < batches; ++i) {
    Batch batch = NextBatch(loader);
    for (int64_t b = 0; b < loader.batch_size(); ++b) {
      windows.push_back(batch.inputs[b * loader.seq_len()] / loader.seq_len());
    }
  }
  return windows;
}

TEST(BatchLoaderTest, SameSeedSameBatchesDifferentSeedDifferent) {
  auto data = CountingData(1000);
  BatchLoader a = MakeLoader(data, 4, 8, 42), b = MakeLoader(data, 4, 8, 42);
  BatchLoader c = MakeLoader(data, 4, 8, 43);
  bool any_different = false;
  for (int i = 0; i < 100; ++i) {
    Batch batch_a = NextBatch(a);
    EXPECT_EQ(batch_a, NextBatch(b)) << "batch " << i;
    any_different |= !(batch_a == NextBatch(c));
  }
  EXPECT_TRUE(any_different);
}

TEST(BatchLoaderTest, TargetsAreInputsShiftedByOne) {
  auto data = CountingData(500);
  BatchLoader loader = MakeLoader(data, 3, 16, 7);
  for (int i = 0; i < 20; ++i) {
    Batch batch = NextBatch(loader);
    for (int b = 0; b < 3; ++b) {
      const int32_t start = batch.inputs[b * 16];
      EXPECT_EQ(start % 16, 0);  // windows start at multiples of T
      for (int t = 0; t < 16; ++t) {
        EXPECT_EQ(batch.inputs[b * 16 + t], start + t);
        EXPECT_EQ(batch.targets[b * 16 + t], start + t + 1);
        EXPECT_EQ(batch.targets[b * 16 + t], static_cast<int32_t>(data->at(start + t + 1)));
      }
    }
  }
}

TEST(BatchLoaderTest, EveryWindowOncePerEpoch) {
  // 401 tokens, T = 8: (401 - 1) / 8 = 50 windows; 3 rows per batch, so batches straddle epochs.
  auto data = CountingData(401);
  BatchLoader loader = MakeLoader(data, 3, 8, 5);
  ASSERT_EQ(loader.num_windows(), 50u);
  const std::vector<int64_t> rows = RowWindows(loader, 34);  // 102 rows: 2 epochs and 2 rows
  std::vector<int64_t> epoch0(rows.begin(), rows.begin() + 50);
  std::vector<int64_t> epoch1(rows.begin() + 50, rows.begin() + 100);
  EXPECT_NE(epoch0, epoch1);  // a fresh permutation each epoch
  std::vector<int64_t> expected(50);
  std::iota(expected.begin(), expected.end(), 0);
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> sorted = e == 0 ? epoch0 : epoch1;
    for (size_t i = 0; i < sorted.size(); ++i) EXPECT_EQ(sorted[i], loader.WindowAt(e, i));
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, expected) << "epoch " << e;
  }
  EXPECT_EQ(loader.position(), (BatchLoader::Position{2, 2}));
  // The last token (400) is only ever a target.
  EXPECT_EQ(*std::max_element(rows.begin(), rows.end()), 49);
}

TEST(BatchLoaderTest, RanksPartitionTheGlobalBatch) {
  auto data = CountingData(1201);  // 75 windows of T = 16; 4 global rows: straddles epochs
  BatchLoader single = MakeLoader(data, 4, 16, 9);
  BatchLoader rank0 = MakeLoader(data, 2, 16, 9, /*world=*/2, /*rank=*/0);
  BatchLoader rank1 = MakeLoader(data, 2, 16, 9, /*world=*/2, /*rank=*/1);
  for (int i = 0; i < 60; ++i) {  // 240 rows: over three epochs
    Batch whole = NextBatch(single), part0 = NextBatch(rank0), part1 = NextBatch(rank1);
    std::vector<int32_t> inputs = part0.inputs, targets = part0.targets;
    inputs.insert(inputs.end(), part1.inputs.begin(), part1.inputs.end());
    targets.insert(targets.end(), part1.targets.begin(), part1.targets.end());
    ASSERT_EQ(inputs, whole.inputs) << "batch " << i;
    ASSERT_EQ(targets, whole.targets) << "batch " << i;
    ASSERT_EQ(rank0.position(), single.position());
    ASSERT_EQ(rank1.position(), single.position());
  }
}

TEST(BatchLoaderTest, SetPositionResumesBitwise) {
  auto data = CountingData(777);
  for (bool shuffle : {true, false}) {
    BatchLoader original = MakeLoader(data, 5, 4, 11, 1, 0, shuffle);
    for (int i = 0; i < 57; ++i) NextBatch(original);  // past the first epoch (194 windows)
    const BatchLoader::Position saved = original.position();
    EXPECT_EQ(saved.epoch, 1u);
    std::vector<Batch> continuation;
    for (int i = 0; i < 80; ++i) continuation.push_back(NextBatch(original));

    BatchLoader resumed = MakeLoader(data, 5, 4, 11, 1, 0, shuffle);
    ASSERT_TRUE(resumed.SetPosition(saved).ok());
    EXPECT_EQ(resumed.position(), saved);
    for (int i = 0; i < 80; ++i) ASSERT_EQ(NextBatch(resumed), continuation[i]) << i;

    absl::Status bad = resumed.SetPosition({0, resumed.num_windows()});
    EXPECT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("counting data"), absl::string_view::npos) << bad;
  }
}

TEST(BatchLoaderTest, SequentialIsInOrderWrapsAndResets) {
  auto data = CountingData(81);  // 10 windows of T = 8
  BatchLoaderOptions options;
  options.batch_size = 2;
  options.seq_len = 8;
  options.world_size = 2;
  options.rank = 1;
  options.seed = 123;
  absl::StatusOr<BatchLoader> loader = BatchLoader::Sequential(data, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  // Global batches of 4 windows: {0 1 2 3} {4 5 6 7} {8 9 0 1} {2 3 4 5}; rank 1 takes rows 2, 3.
  const std::vector<int64_t> expected = {2, 3, 6, 7, 0, 1, 4, 5};
  EXPECT_EQ(RowWindows(*loader, 4), expected);
  EXPECT_EQ(loader->position(), (BatchLoader::Position{1, 6}));
  loader->Reset();
  EXPECT_EQ(RowWindows(*loader, 4), expected);
  // The seed does not matter for the sequential order.
  options.seed = 999;
  absl::StatusOr<BatchLoader> other = BatchLoader::Sequential(data, options);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(RowWindows(*other, 4), expected);
}

TEST(BatchLoaderTest, TooSmallDataIsRefusedClearly) {
  auto data = CountingData(100);  // 99 / 16 = 6 windows < 4 * 2
  BatchLoaderOptions options;
  options.batch_size = 4;
  options.seq_len = 16;
  options.world_size = 2;
  absl::StatusOr<BatchLoader> loader = BatchLoader::Create(data, options);
  ASSERT_FALSE(loader.ok());
  const std::string message(loader.status().message());
  for (const char* fragment :
       {"counting data", "100 tokens", "6 windows", "seq_len = 16", "4 * 2 = 8"}) {
    EXPECT_NE(message.find(fragment), std::string::npos) << fragment << " in: " << message;
  }
  // Exactly one global batch is enough.
  options.world_size = 1;
  options.batch_size = 6;
  EXPECT_TRUE(BatchLoader::Create(data, options).ok());
  options.rank = 1;
  EXPECT_FALSE(BatchLoader::Create(data, options).ok());  // rank out of range
}

// Counting data whose token i is masked when i % 7 < 3, a pattern that no window lines up with.
std::shared_ptr<const TokenData> MaskedCountingData(size_t n) {
  std::vector<uint32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), 0u);
  std::vector<uint8_t> masked(n);
  for (size_t i = 0; i < n; ++i) masked[i] = i % 7 < 3;
  absl::StatusOr<TokenData> data = TokenData::FromVector(
      std::move(tokens), static_cast<uint32_t>(n), "masked counting data", std::move(masked));
  EXPECT_TRUE(data.ok()) << data.status();
  return std::make_shared<const TokenData>(std::move(data).value());
}

TEST(BatchLoaderTest, MaskedTokensAreTargetMinusOneAndNothingElseChanges) {
  // The same tokens with and without a mask, through loaders with the same seed: inputs agree,
  // and targets agree except where the target token is masked, which gives -1.
  auto plain = CountingData(1001), masked = MaskedCountingData(1001);
  for (int world : {1, 2}) {
    for (int rank = 0; rank < world; ++rank) {
      BatchLoader a = MakeLoader(plain, 3, 10, 11, world, rank);
      BatchLoader b = MakeLoader(masked, 3, 10, 11, world, rank);
      size_t minus_one = 0, kept = 0;
      for (int i = 0; i < 40; ++i) {  // several epochs of 100 windows
        Batch pa = NextBatch(a), pb = NextBatch(b);
        EXPECT_EQ(pa.inputs, pb.inputs);
        for (size_t k = 0; k < pa.targets.size(); ++k) {
          const int32_t token = pa.targets[k];
          ASSERT_EQ(pa.inputs[k] + 1, token);
          if (masked->masked(static_cast<size_t>(token))) {
            EXPECT_EQ(pb.targets[k], -1) << "target token " << token;
            ++minus_one;
          } else {
            EXPECT_EQ(pb.targets[k], token);
            ++kept;
          }
        }
      }
      EXPECT_GT(minus_one, 0u);
      EXPECT_GT(kept, minus_one);
    }
  }
}

TEST(BatchLoaderTest, MaskStaysAlignedAtWindowEdges) {
  // T = 4 over 13 tokens: 3 windows [0..4], [4..8], [8..12]; the first input of a window is
  // the last target of the one before, and its mask applies only where it is a target.
  std::vector<uint32_t> tokens(13);
  std::iota(tokens.begin(), tokens.end(), 0u);
  std::vector<uint8_t> masked(13, 0);
  masked[4] = masked[5] = masked[12] = 1;
  absl::StatusOr<TokenData> data =
      TokenData::FromVector(std::move(tokens), 13, "edges", std::move(masked));
  ASSERT_TRUE(data.ok()) << data.status();
  BatchLoader loader = MakeLoader(std::make_shared<const TokenData>(*std::move(data)), 3, 4, 0, 1,
                                  0, /*shuffle=*/false);
  Batch batch = NextBatch(loader);
  EXPECT_EQ(batch.inputs, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{1, 2, 3, -1, -1, 6, 7, 8, 9, 10, 11, -1}));
}

}  // namespace
}  // namespace spillway
