#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

struct AttentionRefOut {
  std::vector<double> out, lse;
};

// Causal softmax(q k^T / sqrt(hs)) v per head, with an explicit (T,T) score matrix.
AttentionRefOut AttentionRef(const std::vector<double>& qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  AttentionRefOut r{std::vector<double>(static_cast<size_t>(B) * T * C),
                    std::vector<double>(static_cast<size_t>(B) * NH * T)};
  std::vector<double> p(T);
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      for (int t = 0; t < T; ++t) {
        const double* q = &qkv[(b * T + t) * 3 * C + h * hs];
        double max = -std::numeric_limits<double>::infinity();
        for (int s = 0; s <= t; ++s) {
          const double* k = &qkv[(b * T + s) * 3 * C + C + h * hs];
          double dot = 0.0;
          for (int d = 0; d < hs; ++d) dot += q[d] * k[d];
          p[s] = dot * scale;
          max = std::max(max, p[s]);
        }
        double sum = 0.0;
        for (int s = 0; s <= t; ++s) sum += std::exp(p[s] - max);
        for (int d = 0; d < hs; ++d) {
          double o = 0.0;
          for (int s = 0; s <= t; ++s) {
            o += std::exp(p[s] - max) / sum * qkv[(b * T + s) * 3 * C + 2 * C + h * hs + d];
          }
          r.out[(b * T + t) * C + h * hs + d] = o;
        }
        r.lse[(b * NH + h) * T + t] = max + std::log(sum);
      }
    }
  }
  return r;
}

TEST(AttentionTest, ForwardMatchesReference) {
  // T > 64 spans several key blocks of the online softmax.
  const int B = 2, T = 150, C = 48, NH = 3;
  const auto qkv = RandomFloats(B * T * 3 * C, 1, 1.5f);
  std::vector<float> out(B * T * C), lse(B * NH * T);
  Cpu().AttentionForward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  const auto ref = AttentionRef(AsFloat64(qkv), B, T, C, NH);
  EXPECT_LT(RelError(out, ref.out), kForwardTol);
  EXPECT_LT(RelError(lse, ref.lse), kForwardTol);
}

TEST(AttentionTest, BackwardMatchesFiniteDifferences) {
  const int B = 2, T = 5, C = 8, NH = 2;
  const auto qkv = RandomFloats(B * T * 3 * C, 2);
  const auto dout = RandomFloats(B * T * C, 3);
  std::vector<float> out(B * T * C), lse(B * NH * T), dqkv(B * T * 3 * C, 7.0f);
  Cpu().AttentionForward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  Cpu().AttentionBackward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, C,
                          NH);
  const auto dout_d = AsFloat64(dout);
  const auto fd = NumericGrad(
      [&](const std::vector<double>& x) { return Dot(AttentionRef(x, B, T, C, NH).out, dout_d); },
      AsFloat64(qkv));
  // dqkv is overwritten, so the 7.0 it started with must not leak into the result.
  EXPECT_LT(RelError(dqkv, fd), kGradTol);
}

TEST(AttentionTest, BackwardMatchesDirectionalDerivativesAtLargerShape) {
  // hs = 83 exercises the full, single-vector and scalar column paths; T = 70 spans two key
  // blocks and ends in a partial row group.
  const int B = 1, T = 70, C = 166, NH = 2;
  const auto qkv = RandomFloats(B * T * 3 * C, 6);
  const auto dout = RandomFloats(B * T * C, 7);
  std::vector<float> out(B * T * C), lse(B * NH * T), dqkv(B * T * 3 * C);
  Cpu().AttentionForward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  Cpu().AttentionBackward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, C,
                          NH);
  const auto dout_d = AsFloat64(dout);
  auto loss = [&](const std::vector<double>& x) {
    return Dot(AttentionRef(x, B, T, C, NH).out, dout_d);
  };
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    EXPECT_LT(DirectionalError(loss, AsFloat64(qkv), dqkv, seed), kGradTol);
  }
}

TEST(AttentionTest, BitwiseIndependentOfThreadCount) {
  const int B = 2, T = 97, C = 36, NH = 3;
  const auto qkv = RandomFloats(B * T * 3 * C, 4);
  const auto dout = RandomFloats(B * T * C, 5);
  auto run = [&](int threads) {
    std::vector<float> out(B * T * C), lse(B * NH * T), dqkv(B * T * 3 * C);
    WithThreads(threads, [&] {
      Cpu().AttentionForward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
      Cpu().AttentionBackward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, C,
                              NH);
    });
    return std::vector<std::vector<float>>{out, lse, dqkv};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
