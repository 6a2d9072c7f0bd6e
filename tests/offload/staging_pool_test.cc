// The staging pool: data moved through it by a producer and a consumer thread, with fewer
// buffers than pieces, arrives equal to a direct copy, and no more buffers are out at once than
// the pool holds.
#include "offload/staging_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <numeric>
#include <thread>
#include <utility>
#include <vector>

namespace spillway {
namespace {

TEST(StagingPoolTest, PiecesThroughTwoBuffersEqualADirectCopy) {
  constexpr int kBuffers = 2;
  constexpr size_t kPiece = 1000;
  std::vector<float> source(kPiece * 37 + 123);
  std::iota(source.begin(), source.end(), 0.5f);
  auto pool = StagingPool::Create(kBuffers, kPiece * sizeof(float), Tier::kHost);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->total_bytes(), kBuffers * kPiece * sizeof(float));

  std::vector<float> staged(source.size(), 0.0f);
  std::mutex mu;
  std::deque<std::pair<int, size_t>> filled;  // buffer, offset
  std::atomic<int> out{0}, most_out{0};
  std::thread consumer([&] {
    for (size_t done = 0; done < source.size();) {
      std::pair<int, size_t> piece{-1, 0};
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!filled.empty()) {
          piece = filled.front();
          filled.pop_front();
        }
      }
      if (piece.first < 0) {
        std::this_thread::yield();
        continue;
      }
      const size_t n = std::min(kPiece, source.size() - piece.second);
      std::memcpy(staged.data() + piece.second, (*pool)->data(piece.first), n * sizeof(float));
      --out;
      (*pool)->Release(piece.first);
      done += n;
    }
  });
  for (size_t offset = 0; offset < source.size(); offset += kPiece) {
    const int buffer = (*pool)->Acquire();
    most_out = std::max(most_out.load(), ++out);
    const size_t n = std::min(kPiece, source.size() - offset);
    std::memcpy((*pool)->data(buffer), source.data() + offset, n * sizeof(float));
    std::lock_guard<std::mutex> lock(mu);
    filled.emplace_back(buffer, offset);
  }
  consumer.join();
  EXPECT_EQ(staged, source);
  EXPECT_LE(most_out.load(), kBuffers);
}

TEST(StagingPoolTest, EmptyPoolIsRefused) {
  EXPECT_FALSE(StagingPool::Create(0, 64, Tier::kHost).ok());
  EXPECT_FALSE(StagingPool::Create(2, 0, Tier::kHost).ok());
}

}  // namespace
}  // namespace spillway
