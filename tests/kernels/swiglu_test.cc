// SwiGLU (fused gate/up input) on the CPU backend against float64 and finite differences.
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

std::vector<double> SwiGluRef(const std::vector<double>& gu, int N, int F) {
  std::vector<double> out(static_cast<size_t>(N) * F);
  for (int n = 0; n < N; ++n) {
    for (int j = 0; j < F; ++j) {
      const double g = gu[n * 2 * F + j], u = gu[n * 2 * F + F + j];
      out[n * F + j] = g / (1.0 + std::exp(-g)) * u;
    }
  }
  return out;
}

TEST(SwiGluTest, ForwardMatchesReference) {
  const int N = 13, F = 37;
  // Scale 6: gates deep in both tails of the sigmoid.
  const auto gu = RandomFloats(N * 2 * F, 1, 6.0f);
  std::vector<float> out(N * F);
  Cpu().SwiGluForward(out.data(), gu.data(), N, F);
  EXPECT_LT(RelError(out, SwiGluRef(AsFloat64(gu), N, F)), kForwardTol);
}

TEST(SwiGluTest, BackwardMatchesFiniteDifferences) {
  const int N = 5, F = 7;
  const auto gu = RandomFloats(N * 2 * F, 2, 3.0f);
  const auto dout = RandomFloats(N * F, 3);
  std::vector<float> dgu(N * 2 * F, 9.0f);  // overwritten: the 9 must not show
  Cpu().SwiGluBackward(dgu.data(), dout.data(), gu.data(), N, F);
  const auto dout_d = AsFloat64(dout);
  const auto fd = NumericGrad(
      [&](const std::vector<double>& x) { return Dot(SwiGluRef(x, N, F), dout_d); }, AsFloat64(gu));
  EXPECT_LT(RelError(dgu, fd), kGradTol);
}

TEST(SwiGluTest, BitwiseIndependentOfThreadCount) {
  const int N = 301, F = 200;
  const auto gu = RandomFloats(N * 2 * F, 4, 2.0f);
  const auto dout = RandomFloats(N * F, 5);
  auto run = [&](int threads) {
    std::vector<float> out(N * F), dgu(N * 2 * F);
    WithThreads(threads, [&] {
      Cpu().SwiGluForward(out.data(), gu.data(), N, F);
      Cpu().SwiGluBackward(dgu.data(), dout.data(), gu.data(), N, F);
    });
    return std::vector<std::vector<float>>{out, dgu};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
