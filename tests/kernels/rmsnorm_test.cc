// RMSNorm on the CPU backend against a float64 reference and float64 finite differences.
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

constexpr float kEps = 1e-5f;

struct RmsNormRefOut {
  std::vector<double> out, rstd;
};

RmsNormRefOut RmsNormRef(const std::vector<double>& inp, const std::vector<double>& w, int N, int C,
                         double eps) {
  RmsNormRefOut r{std::vector<double>(inp.size()), std::vector<double>(N)};
  for (int n = 0; n < N; ++n) {
    double ms = 0.0;
    for (int c = 0; c < C; ++c) ms += inp[n * C + c] * inp[n * C + c];
    const double rstd = 1.0 / std::sqrt(ms / C + eps);
    for (int c = 0; c < C; ++c) r.out[n * C + c] = inp[n * C + c] * rstd * w[c];
    r.rstd[n] = rstd;
  }
  return r;
}

TEST(RmsNormTest, ForwardMatchesReference) {
  // C = 72: the vector reductions and their scalar tails.
  const int N = 17, C = 72;
  const auto inp = RandomFloats(N * C, 1, 2.0f);
  const auto w = RandomFloats(C, 2);
  std::vector<float> out(N * C), rstd(N);
  Cpu().RmsNormForward(out.data(), rstd.data(), inp.data(), w.data(), kEps, N, C);
  const auto ref = RmsNormRef(AsFloat64(inp), AsFloat64(w), N, C, kEps);
  EXPECT_LT(RelError(out, ref.out), kForwardTol);
  EXPECT_LT(RelError(rstd, ref.rstd), kForwardTol);
}

TEST(RmsNormTest, EpsIsUsed) {
  // A row of tiny values: eps dominates the mean square, so a wrong eps shows.
  const int N = 2, C = 8;
  std::vector<float> inp(N * C, 1e-3f);
  const std::vector<float> w(C, 1.0f);
  std::vector<float> out(N * C), rstd(N);
  Cpu().RmsNormForward(out.data(), rstd.data(), inp.data(), w.data(), 1e-2f, N, C);
  EXPECT_NEAR(rstd[0], 1.0 / std::sqrt(1e-6 + 1e-2), 1e-5);
}

TEST(RmsNormTest, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int N = 10, C = 8;
  const auto inp = RandomFloats(N * C, 4);
  const auto w = RandomFloats(C, 5);
  const auto dout = RandomFloats(N * C, 7);
  std::vector<float> out(N * C), rstd(N);
  Cpu().RmsNormForward(out.data(), rstd.data(), inp.data(), w.data(), kEps, N, C);
  std::vector<float> dinp(N * C), dw(C);
  Cpu().RmsNormBackward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N,
                        C);

  const auto inp_d = AsFloat64(inp), w_d = AsFloat64(w), dout_d = AsFloat64(dout);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& ww) {
    return Dot(RmsNormRef(x, ww, N, C, kEps).out, dout_d);
  };
  EXPECT_LT(RelError(dinp, NumericGrad([&](const auto& x) { return loss(x, w_d); }, inp_d)),
            kGradTol);
  EXPECT_LT(RelError(dw, NumericGrad([&](const auto& x) { return loss(inp_d, x); }, w_d)),
            kGradTol);

  std::vector<float> dinp2 = dinp, dw2 = dw;
  Cpu().RmsNormBackward(dinp2.data(), dw2.data(), dout.data(), inp.data(), w.data(), rstd.data(), N,
                        C);
  for (size_t i = 0; i < dinp.size(); ++i) EXPECT_EQ(dinp2[i], 2 * dinp[i]);
  for (int c = 0; c < C; ++c) EXPECT_EQ(dw2[c], 2 * dw[c]);
}

TEST(RmsNormTest, BackwardMatchesDirectionalDerivativesAtLargerShape) {
  const int N = 17, C = 200;  // C > 64: several channel blocks of the weight gradient
  const auto inp = RandomFloats(N * C, 12, 2.0f);
  const auto w = RandomFloats(C, 13);
  const auto dout = RandomFloats(N * C, 15);
  std::vector<float> out(N * C), rstd(N), dinp(N * C), dw(C);
  Cpu().RmsNormForward(out.data(), rstd.data(), inp.data(), w.data(), kEps, N, C);
  Cpu().RmsNormBackward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N,
                        C);
  const auto inp_d = AsFloat64(inp), w_d = AsFloat64(w), dout_d = AsFloat64(dout);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& ww) {
    return Dot(RmsNormRef(x, ww, N, C, kEps).out, dout_d);
  };
  EXPECT_LT(DirectionalError([&](const auto& x) { return loss(x, w_d); }, inp_d, dinp, 1),
            kGradTol);
  EXPECT_LT(DirectionalError([&](const auto& x) { return loss(inp_d, x); }, w_d, dw, 2), kGradTol);
}

TEST(RmsNormTest, BitwiseIndependentOfThreadCount) {
  const int N = 301, C = 200;
  const auto inp = RandomFloats(N * C, 8);
  const auto w = RandomFloats(C, 9);
  const auto dout = RandomFloats(N * C, 11);
  auto run = [&](int threads) {
    std::vector<float> out(N * C), rstd(N), dinp(N * C), dw(C);
    WithThreads(threads, [&] {
      Cpu().RmsNormForward(out.data(), rstd.data(), inp.data(), w.data(), kEps, N, C);
      Cpu().RmsNormBackward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(),
                            N, C);
    });
    return std::vector<std::vector<float>>{out, rstd, dinp, dw};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
