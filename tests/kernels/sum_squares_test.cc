#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <span>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

// float64 sums of float32 squares of ~1e5 values agree far below fp32 precision.
constexpr double kSumSquaresTol = 1e-12;

TEST(SumSquaresTest, MatchesFloat64Sum) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{100003}}) {
    const auto x = RandomFloats(n, 1);
    double want = 0.0;
    for (float v : x) want += static_cast<double>(v) * v;
    double got = 0.0;
    Cpu().AddSumSquares(&got, x.data(), n);
    EXPECT_NEAR(got, want, kSumSquaresTol * std::max(want, 1.0)) << n;
  }
}

TEST(SumSquaresTest, BitwiseIndependentOfThreadCount) {
  const size_t n = 300007;
  const auto x = RandomFloats(n, 2);
  double one = 0.0, three = 0.0;
  WithThreads(1, [&] { Cpu().AddSumSquares(&one, x.data(), n); });
  WithThreads(3, [&] { Cpu().AddSumSquares(&three, x.data(), n); });
  EXPECT_EQ(std::memcmp(&one, &three, sizeof(double)), 0);
}

// The accumulating contract: two calls add to what is there.
TEST(SumSquaresTest, AddsToTheAccumulator) {
  const auto x = RandomFloats(1000, 3);
  double once = 0.0, twice = 5.0;
  Cpu().AddSumSquares(&once, x.data(), x.size());
  Cpu().AddSumSquares(&twice, x.data(), 600);
  Cpu().AddSumSquares(&twice, x.data() + 600, 400);
  EXPECT_NEAR(twice, 5.0 + once, 1e-12 * once);
}

// Sums taken apart into zeroed doubles and added in order equal the sums added as they go.
TEST(SumSquaresTest, PartsAddAsOneCallPerPart) {
  const auto x = RandomFloats(5000, 9);
  const std::vector<size_t> ranges = {0, 10, 16, 16, 17, 3000, 3001, 5000};
  double want = 0.5, got = 0.5;
  std::vector<std::span<const float>> parts;
  for (size_t k = 0; k < ranges.size(); k += 2) {
    Cpu().AddSumSquares(&want, x.data() + ranges[k], ranges[k + 1] - ranges[k]);
    parts.emplace_back(x.data() + ranges[k], ranges[k + 1] - ranges[k]);
  }
  Cpu().AddSumSquaresParts(&got, parts);
  EXPECT_EQ(std::memcmp(&got, &want, sizeof(double)), 0) << got << " vs " << want;
}

TEST(SumSquaresTest, AddInOrderEqualsAddingAsTheyGo) {
  const auto x = RandomFloats(5000, 5);
  const size_t cuts[] = {0, 7, 1000, 1001, 4096, 5000};
  double direct = 0.5;
  std::vector<double> parts(5, 0.0);
  for (size_t k = 0; k + 1 < std::size(cuts); ++k) {
    Cpu().AddSumSquares(&direct, x.data() + cuts[k], cuts[k + 1] - cuts[k]);
    Cpu().AddSumSquares(&parts[k], x.data() + cuts[k], cuts[k + 1] - cuts[k]);
  }
  double apart = 0.5;
  Cpu().AddInOrder(&apart, parts.data(), parts.size());
  EXPECT_EQ(std::memcmp(&direct, &apart, sizeof(double)), 0) << direct << " vs " << apart;
  Cpu().AddInOrder(&apart, parts.data(), 0);
  EXPECT_EQ(std::memcmp(&direct, &apart, sizeof(double)), 0);
}

// AddMean adds float(sum / divisor), the sum in index order, and nothing for divisor 0.
TEST(SumSquaresTest, AddMeanIsTheRoundedMean) {
  const auto x = RandomFloats(1001, 4);
  double sum = 0.0;
  for (float v : x) sum += v;
  double acc = 0.25;
  Cpu().AddMean(&acc, x.data(), x.size(), 7);
  EXPECT_EQ(acc, 0.25 + static_cast<double>(static_cast<float>(sum / 7.0)));
  Cpu().AddMean(&acc, x.data(), x.size(), 0);
  EXPECT_EQ(acc, 0.25 + static_cast<double>(static_cast<float>(sum / 7.0)));
}

}  // namespace
}  // namespace spillway::kernels::testing
