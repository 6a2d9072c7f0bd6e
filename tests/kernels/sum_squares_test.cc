#include <algorithm>
#include <cmath>
#include <cstring>
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
    double got = -1.0;
    Cpu().SumSquares(&got, x.data(), n);
    EXPECT_NEAR(got, want, kSumSquaresTol * std::max(want, 1.0)) << n;
  }
}

TEST(SumSquaresTest, BitwiseIndependentOfThreadCount) {
  const size_t n = 300007;
  const auto x = RandomFloats(n, 2);
  double one = 0.0, three = 0.0;
  WithThreads(1, [&] { Cpu().SumSquares(&one, x.data(), n); });
  WithThreads(3, [&] { Cpu().SumSquares(&three, x.data(), n); });
  EXPECT_EQ(std::memcmp(&one, &three, sizeof(double)), 0);
}

}  // namespace
}  // namespace spillway::kernels::testing
