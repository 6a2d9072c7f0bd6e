#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

// out (N,OC) = inp (N,C) @ w (OC,C)^T + bias, in float64; empty bias means none.
std::vector<double> MatmulRef(const std::vector<double>& inp, const std::vector<double>& w,
                              const std::vector<double>& bias, int N, int C, int OC) {
  std::vector<double> out(static_cast<size_t>(N) * OC);
  for (int n = 0; n < N; ++n) {
    for (int o = 0; o < OC; ++o) {
      double s = bias.empty() ? 0.0 : bias[o];
      for (int c = 0; c < C; ++c) s += inp[n * C + c] * w[o * C + c];
      out[n * OC + o] = s;
    }
  }
  return out;
}

struct Shape {
  int N, C, OC;
};

TEST(MatmulTest, ForwardMatchesReference) {
  // Shapes that exercise full and partial register tiles in both output dimensions.
  for (const Shape& s : {Shape{37, 70, 45}, Shape{64, 32, 96}, Shape{5, 3, 7}}) {
    const auto inp = RandomFloats(s.N * s.C, 1);
    const auto w = RandomFloats(s.OC * s.C, 2);
    const auto bias = RandomFloats(s.OC, 3);
    std::vector<float> out(s.N * s.OC);
    Cpu().MatmulForward(out.data(), inp.data(), w.data(), bias.data(), nullptr, s.N, s.C, s.OC);
    EXPECT_LT(
        RelError(out, MatmulRef(AsFloat64(inp), AsFloat64(w), AsFloat64(bias), s.N, s.C, s.OC)),
        kForwardTol);
    Cpu().MatmulForward(out.data(), inp.data(), w.data(), nullptr, nullptr, s.N, s.C, s.OC);
    EXPECT_LT(RelError(out, MatmulRef(AsFloat64(inp), AsFloat64(w), {}, s.N, s.C, s.OC)),
              kForwardTol);
  }
}

TEST(MatmulTest, BackwardMatchesFiniteDifferences) {
  const int N = 10, C = 8, OC = 12;
  const auto inp = RandomFloats(N * C, 4);
  const auto w = RandomFloats(OC * C, 5);
  const auto bias = RandomFloats(OC, 6);
  const auto dout = RandomFloats(N * OC, 7);
  std::vector<float> dinp(N * C), dw(OC * C), dbias(OC);
  Cpu().MatmulBackward(dinp.data(), dw.data(), dbias.data(), dout.data(), inp.data(), w.data(), N,
                       C, OC);

  const auto inp_d = AsFloat64(inp), w_d = AsFloat64(w), bias_d = AsFloat64(bias);
  const auto dout_d = AsFloat64(dout);
  EXPECT_LT(RelError(dinp, NumericGrad(
                               [&](const std::vector<double>& x) {
                                 return Dot(MatmulRef(x, w_d, bias_d, N, C, OC), dout_d);
                               },
                               inp_d)),
            kGradTol);
  EXPECT_LT(RelError(dw, NumericGrad(
                             [&](const std::vector<double>& x) {
                               return Dot(MatmulRef(inp_d, x, bias_d, N, C, OC), dout_d);
                             },
                             w_d)),
            kGradTol);
  EXPECT_LT(RelError(dbias, NumericGrad(
                                [&](const std::vector<double>& x) {
                                  return Dot(MatmulRef(inp_d, w_d, x, N, C, OC), dout_d);
                                },
                                bias_d)),
            kGradTol);
}

TEST(MatmulTest, BackwardMatchesDirectionalDerivativesAtLargerShape) {
  // Partial register tiles in every dimension of all three products.
  const int N = 37, C = 70, OC = 45;
  const auto inp = RandomFloats(N * C, 15);
  const auto w = RandomFloats(OC * C, 16);
  const auto bias = RandomFloats(OC, 17);
  const auto dout = RandomFloats(N * OC, 18);
  std::vector<float> dinp(N * C), dw(OC * C), dbias(OC);
  Cpu().MatmulBackward(dinp.data(), dw.data(), dbias.data(), dout.data(), inp.data(), w.data(), N,
                       C, OC);
  const auto inp_d = AsFloat64(inp), w_d = AsFloat64(w), bias_d = AsFloat64(bias);
  const auto dout_d = AsFloat64(dout);
  EXPECT_LT(DirectionalError(
                [&](const auto& x) { return Dot(MatmulRef(x, w_d, bias_d, N, C, OC), dout_d); },
                inp_d, dinp, 1),
            kGradTol);
  EXPECT_LT(DirectionalError(
                [&](const auto& x) { return Dot(MatmulRef(inp_d, x, bias_d, N, C, OC), dout_d); },
                w_d, dw, 2),
            kGradTol);
  EXPECT_LT(DirectionalError(
                [&](const auto& x) { return Dot(MatmulRef(inp_d, w_d, x, N, C, OC), dout_d); },
                bias_d, dbias, 3),
            kGradTol);
}

TEST(MatmulTest, BackwardOverwritesDinpAccumulatesTheRestAndAllowsNullBias) {
  const int N = 19, C = 13, OC = 21;
  const auto inp = RandomFloats(N * C, 8);
  const auto w = RandomFloats(OC * C, 9);
  const auto dout = RandomFloats(N * OC, 10);
  std::vector<float> dinp(N * C), dw(OC * C), dbias(OC);
  Cpu().MatmulBackward(dinp.data(), dw.data(), dbias.data(), dout.data(), inp.data(), w.data(), N,
                       C, OC);
  std::vector<float> dinp2 = dinp, dw2 = dw, dbias2 = dbias;
  Cpu().MatmulBackward(dinp2.data(), dw2.data(), dbias2.data(), dout.data(), inp.data(), w.data(),
                       N, C, OC);
  // dinp is overwritten; the others add their full sum once, so a second call gives exactly 2g.
  for (size_t i = 0; i < dinp.size(); ++i) EXPECT_EQ(dinp2[i], dinp[i]);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_EQ(dw2[i], 2 * dw[i]);
  for (size_t i = 0; i < dbias.size(); ++i) EXPECT_EQ(dbias2[i], 2 * dbias[i]);

  std::vector<float> dinp3(N * C), dw3(OC * C);
  Cpu().MatmulBackward(dinp3.data(), dw3.data(), nullptr, dout.data(), inp.data(), w.data(), N, C,
                       OC);
  EXPECT_TRUE(BitwiseEqual(dinp3, dinp));
  EXPECT_TRUE(BitwiseEqual(dw3, dw));
}

TEST(MatmulTest, BitwiseIndependentOfThreadCount) {
  const int N = 203, C = 70, OC = 133;
  const auto inp = RandomFloats(N * C, 11);
  const auto w = RandomFloats(OC * C, 12);
  const auto bias = RandomFloats(OC, 13);
  const auto dout = RandomFloats(N * OC, 14);
  auto run = [&](int threads) {
    std::vector<float> out(N * OC), dinp(N * C), dw(OC * C), dbias(OC);
    WithThreads(threads, [&] {
      Cpu().MatmulForward(out.data(), inp.data(), w.data(), bias.data(), nullptr, N, C, OC);
      Cpu().MatmulBackward(dinp.data(), dw.data(), dbias.data(), dout.data(), inp.data(), w.data(),
                           N, C, OC);
    });
    return std::vector<std::vector<float>>{out, dinp, dw, dbias};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
