#include "kernels/cpu/elementwise.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

double GeluRef(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

std::vector<double> GeluRef(const std::vector<double>& x) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = GeluRef(x[i]);
  return out;
}

TEST(GeluTest, ForwardMatchesReference) {
  const auto inp = RandomFloats(1000, 1, 3.0f);
  std::vector<float> out(inp.size());
  Cpu().GeluForward(out.data(), inp.data(), inp.size());
  EXPECT_LT(RelError(out, GeluRef(AsFloat64(inp))), kForwardTol);
}

TEST(GeluTest, BackwardMatchesFiniteDifferencesInPlace) {
  const auto inp = RandomFloats(200, 2, 3.0f);
  const auto dout = RandomFloats(inp.size(), 3);
  const auto dout_d = AsFloat64(dout);
  const auto fd = NumericGrad([&](const std::vector<double>& x) { return Dot(GeluRef(x), dout_d); },
                              AsFloat64(inp));
  std::vector<float> dinp(inp.size());
  Cpu().GeluBackward(dinp.data(), inp.data(), dout.data(), inp.size());
  EXPECT_LT(RelError(dinp, fd), kGradTol);
  std::vector<float> inplace = dout;  // dinp aliasing dout
  Cpu().GeluBackward(inplace.data(), inp.data(), inplace.data(), inp.size());
  EXPECT_TRUE(BitwiseEqual(inplace, dinp));
}

TEST(ElementwiseTest, FillAddAccumulate) {
  const size_t n = 100003;
  const auto a = RandomFloats(n, 4), b = RandomFloats(n, 5);
  std::vector<float> x(n);
  Cpu().Fill(x.data(), 2.5f, n);
  for (float v : x) ASSERT_EQ(v, 2.5f);
  Cpu().Add(x.data(), a.data(), b.data(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], a[i] + b[i]);
  std::vector<float> y = a;
  Cpu().Add(y.data(), y.data(), b.data(), n);  // out aliasing a
  EXPECT_TRUE(BitwiseEqual(y, x));
  y = b;
  Cpu().Accumulate(y.data(), a.data(), n);
  EXPECT_TRUE(BitwiseEqual(y, x));
}

TEST(ElementwiseTest, CopyEqualsTheSourceOnEveryBlockBoundary) {
  for (const size_t n : {size_t{0}, size_t{1}, size_t{65535}, size_t{65536}, size_t{200003}}) {
    const auto src = RandomFloats(n, 8);
    std::vector<float> dst(n + 1, -7.0f);
    WithThreads(3, [&] { cpu::Copy(dst.data(), src.data(), n); });
    EXPECT_TRUE(BitwiseEqual(std::vector<float>(dst.begin(), dst.begin() + n), src)) << n;
    EXPECT_EQ(dst[n], -7.0f) << "Copy wrote past n = " << n;
  }
}

TEST(ElementwiseTest, BitwiseIndependentOfThreadCount) {
  const size_t n = 100003;
  const auto inp = RandomFloats(n, 6, 3.0f), dout = RandomFloats(n, 7);
  auto run = [&](int threads) {
    std::vector<float> out(n), dinp(n), sum(n), acc = dout, filled(n);
    WithThreads(threads, [&] {
      Cpu().Fill(filled.data(), -1.5f, n);
      Cpu().GeluForward(out.data(), inp.data(), n);
      Cpu().GeluBackward(dinp.data(), inp.data(), dout.data(), n);
      Cpu().Add(sum.data(), inp.data(), dout.data(), n);
      Cpu().Accumulate(acc.data(), inp.data(), n);
    });
    return std::vector<std::vector<float>>{out, dinp, sum, acc, filled};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
