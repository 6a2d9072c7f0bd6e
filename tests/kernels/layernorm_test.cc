#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

struct LayerNormRefOut {
  std::vector<double> out, mean, rstd;
};

LayerNormRefOut LayerNormRef(const std::vector<double>& inp, const std::vector<double>& w,
                             const std::vector<double>& b, int N, int C) {
  LayerNormRefOut r{std::vector<double>(inp.size()), std::vector<double>(N),
                    std::vector<double>(N)};
  for (int n = 0; n < N; ++n) {
    double mean = 0.0, var = 0.0;
    for (int c = 0; c < C; ++c) mean += inp[n * C + c];
    mean /= C;
    for (int c = 0; c < C; ++c) var += (inp[n * C + c] - mean) * (inp[n * C + c] - mean);
    var /= C;
    const double rstd = 1.0 / std::sqrt(var + 1e-5);
    for (int c = 0; c < C; ++c) r.out[n * C + c] = (inp[n * C + c] - mean) * rstd * w[c] + b[c];
    r.mean[n] = mean;
    r.rstd[n] = rstd;
  }
  return r;
}

TEST(LayerNormTest, ForwardMatchesReference) {
  const int N = 17, C = 72;
  const auto inp = RandomFloats(N * C, 1, 2.0f);
  const auto w = RandomFloats(C, 2);
  const auto b = RandomFloats(C, 3);
  std::vector<float> out(N * C), mean(N), rstd(N);
  Cpu().LayerNormForward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                         C);
  const auto ref = LayerNormRef(AsFloat64(inp), AsFloat64(w), AsFloat64(b), N, C);
  EXPECT_LT(RelError(out, ref.out), kForwardTol);
  EXPECT_LT(RelError(mean, ref.mean), kForwardTol);
  EXPECT_LT(RelError(rstd, ref.rstd), kForwardTol);
}

TEST(LayerNormTest, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int N = 10, C = 8;
  const auto inp = RandomFloats(N * C, 4);
  const auto w = RandomFloats(C, 5);
  const auto b = RandomFloats(C, 6);
  const auto dout = RandomFloats(N * C, 7);
  std::vector<float> out(N * C), mean(N), rstd(N);
  Cpu().LayerNormForward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                         C);
  std::vector<float> dinp(N * C), dw(C), db(C);
  Cpu().LayerNormBackward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(),
                          mean.data(), rstd.data(), N, C);

  const auto inp_d = AsFloat64(inp), w_d = AsFloat64(w), b_d = AsFloat64(b);
  const auto dout_d = AsFloat64(dout);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& ww,
                  const std::vector<double>& bb) {
    return Dot(LayerNormRef(x, ww, bb, N, C).out, dout_d);
  };
  EXPECT_LT(RelError(dinp, NumericGrad([&](const auto& x) { return loss(x, w_d, b_d); }, inp_d)),
            kGradTol);
  EXPECT_LT(RelError(dw, NumericGrad([&](const auto& x) { return loss(inp_d, x, b_d); }, w_d)),
            kGradTol);
  EXPECT_LT(RelError(db, NumericGrad([&](const auto& x) { return loss(inp_d, w_d, x); }, b_d)),
            kGradTol);

  std::vector<float> dinp2 = dinp, dw2 = dw, db2 = db;
  Cpu().LayerNormBackward(dinp2.data(), dw2.data(), db2.data(), dout.data(), inp.data(), w.data(),
                          mean.data(), rstd.data(), N, C);
  for (size_t i = 0; i < dinp.size(); ++i) EXPECT_EQ(dinp2[i], 2 * dinp[i]);
  for (int c = 0; c < C; ++c) {
    EXPECT_EQ(dw2[c], 2 * dw[c]);
    EXPECT_EQ(db2[c], 2 * db[c]);
  }
}

TEST(LayerNormTest, BackwardMatchesDirectionalDerivativesAtLargerShape) {
  // C = 72 runs the vector reductions as well as their scalar tails.
  const int N = 17, C = 72;
  const auto inp = RandomFloats(N * C, 12, 2.0f);
  const auto w = RandomFloats(C, 13);
  const auto b = RandomFloats(C, 14);
  const auto dout = RandomFloats(N * C, 15);
  std::vector<float> out(N * C), mean(N), rstd(N), dinp(N * C), dw(C), db(C);
  Cpu().LayerNormForward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                         C);
  Cpu().LayerNormBackward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(),
                          mean.data(), rstd.data(), N, C);
  const auto inp_d = AsFloat64(inp), w_d = AsFloat64(w), b_d = AsFloat64(b);
  const auto dout_d = AsFloat64(dout);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& ww,
                  const std::vector<double>& bb) {
    return Dot(LayerNormRef(x, ww, bb, N, C).out, dout_d);
  };
  EXPECT_LT(DirectionalError([&](const auto& x) { return loss(x, w_d, b_d); }, inp_d, dinp, 1),
            kGradTol);
  EXPECT_LT(DirectionalError([&](const auto& x) { return loss(inp_d, x, b_d); }, w_d, dw, 2),
            kGradTol);
  EXPECT_LT(DirectionalError([&](const auto& x) { return loss(inp_d, w_d, x); }, b_d, db, 3),
            kGradTol);
}

TEST(LayerNormTest, BitwiseIndependentOfThreadCount) {
  const int N = 301, C = 200;
  const auto inp = RandomFloats(N * C, 8);
  const auto w = RandomFloats(C, 9);
  const auto b = RandomFloats(C, 10);
  const auto dout = RandomFloats(N * C, 11);
  auto run = [&](int threads) {
    std::vector<float> out(N * C), mean(N), rstd(N), dinp(N * C), dw(C), db(C);
    WithThreads(threads, [&] {
      Cpu().LayerNormForward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(),
                             N, C);
      Cpu().LayerNormBackward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(),
                              mean.data(), rstd.data(), N, C);
    });
    return std::vector<std::vector<float>>{out, mean, rstd, dinp, dw, db};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
