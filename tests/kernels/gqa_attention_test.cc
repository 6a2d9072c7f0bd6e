// Grouped-query attention on the CPU backend: against a float64 reference (repeat_kv, as
// Hugging Face Llama computes it), float64 finite differences, and bitwise against plain
// multi-head attention when NKV == NH.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

struct GqaShape {
  int B, T, NH, NKV, hs;
  size_t Row() const { return static_cast<size_t>(NH + 2 * NKV) * hs; }
  size_t QkvSize() const { return static_cast<size_t>(B) * T * Row(); }
  size_t OutSize() const { return static_cast<size_t>(B) * T * NH * hs; }
  size_t LseSize() const { return static_cast<size_t>(B) * NH * T; }
};

// Causal softmax(q k^T / sqrt(hs)) v per query head h, with kv head h / (NH / NKV), through an
// explicit (T,T) score matrix.
std::vector<double> GqaRef(const std::vector<double>& qkv, const GqaShape& s,
                           std::vector<double>* lse = nullptr) {
  const int C = s.NH * s.hs, group = s.NH / s.NKV;
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.hs));
  std::vector<double> out(s.OutSize());
  if (lse != nullptr) lse->assign(s.LseSize(), 0.0);
  std::vector<double> p(s.T);
  for (int b = 0; b < s.B; ++b) {
    for (int h = 0; h < s.NH; ++h) {
      const size_t k_off = static_cast<size_t>(s.NH + h / group) * s.hs;
      const size_t v_off = k_off + static_cast<size_t>(s.NKV) * s.hs;
      for (int t = 0; t < s.T; ++t) {
        const double* q = &qkv[(b * s.T + t) * s.Row() + h * s.hs];
        double max = -std::numeric_limits<double>::infinity();
        for (int u = 0; u <= t; ++u) {
          const double* k = &qkv[(b * s.T + u) * s.Row() + k_off];
          double dot = 0.0;
          for (int d = 0; d < s.hs; ++d) dot += q[d] * k[d];
          p[u] = dot * scale;
          max = std::max(max, p[u]);
        }
        double sum = 0.0;
        for (int u = 0; u <= t; ++u) sum += std::exp(p[u] - max);
        for (int d = 0; d < s.hs; ++d) {
          double o = 0.0;
          for (int u = 0; u <= t; ++u) {
            o += std::exp(p[u] - max) / sum * qkv[(b * s.T + u) * s.Row() + v_off + d];
          }
          out[(b * s.T + t) * C + h * s.hs + d] = o;
        }
        if (lse != nullptr) (*lse)[(b * s.NH + h) * s.T + t] = max + std::log(sum);
      }
    }
  }
  return out;
}

struct GqaResult {
  std::vector<float> out, lse, dqkv;
};

GqaResult RunGqa(const GqaShape& s, const std::vector<float>& qkv, const std::vector<float>& dout) {
  GqaResult r{std::vector<float>(s.OutSize()), std::vector<float>(s.LseSize()),
              std::vector<float>(s.QkvSize(), 7.0f)};
  Cpu().GqaAttentionForward(r.out.data(), r.lse.data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.hs);
  Cpu().GqaAttentionBackward(r.dqkv.data(), dout.data(), qkv.data(), r.out.data(), r.lse.data(),
                             s.B, s.T, s.NH, s.NKV, s.hs);
  return r;
}

TEST(GqaAttentionTest, EqualsMultiHeadAttentionBitwiseWhenKvHeadsEqualHeads) {
  // T > 64: several key blocks; hs = 12: vector and scalar column paths.
  const GqaShape s{2, 150, 3, 3, 12};
  const int C = s.NH * s.hs;
  const auto qkv = RandomFloats(s.QkvSize(), 1);
  const auto dout = RandomFloats(s.OutSize(), 2);
  const GqaResult gqa = RunGqa(s, qkv, dout);
  std::vector<float> out(s.OutSize()), lse(s.LseSize()), dqkv(s.QkvSize());
  Cpu().AttentionForward(out.data(), lse.data(), qkv.data(), s.B, s.T, C, s.NH);
  Cpu().AttentionBackward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), s.B, s.T, C,
                          s.NH);
  EXPECT_TRUE(BitwiseEqual(gqa.out, out));
  EXPECT_TRUE(BitwiseEqual(gqa.lse, lse));
  EXPECT_TRUE(BitwiseEqual(gqa.dqkv, dqkv));
}

TEST(GqaAttentionTest, ForwardMatchesReference) {
  for (const GqaShape s : {GqaShape{2, 150, 6, 2, 16}, GqaShape{1, 70, 4, 1, 20}}) {
    SCOPED_TRACE(::testing::Message() << "NH=" << s.NH << " NKV=" << s.NKV);
    const auto qkv = RandomFloats(s.QkvSize(), 3, 1.5f);
    std::vector<float> out(s.OutSize()), lse(s.LseSize());
    Cpu().GqaAttentionForward(out.data(), lse.data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.hs);
    std::vector<double> ref_lse;
    const auto ref = GqaRef(AsFloat64(qkv), s, &ref_lse);
    EXPECT_LT(RelError(out, ref), kForwardTol);
    EXPECT_LT(RelError(lse, ref_lse), kForwardTol);
  }
}

TEST(GqaAttentionTest, BackwardMatchesFiniteDifferences) {
  // Groups of 2 and one kv head for all (multi-query attention).
  for (const GqaShape s : {GqaShape{2, 5, 4, 2, 4}, GqaShape{1, 6, 3, 1, 4}}) {
    SCOPED_TRACE(::testing::Message() << "NH=" << s.NH << " NKV=" << s.NKV);
    const auto qkv = RandomFloats(s.QkvSize(), 4);
    const auto dout = RandomFloats(s.OutSize(), 5);
    const GqaResult r = RunGqa(s, qkv, dout);
    const auto dout_d = AsFloat64(dout);
    const auto fd = NumericGrad(
        [&](const std::vector<double>& x) { return Dot(GqaRef(x, s), dout_d); }, AsFloat64(qkv));
    EXPECT_LT(RelError(r.dqkv, fd), kGradTol);
  }
}

TEST(GqaAttentionTest, BackwardMatchesDirectionalDerivativesAtLargerShape) {
  const GqaShape s{1, 70, 6, 2, 40};
  const auto qkv = RandomFloats(s.QkvSize(), 6);
  const auto dout = RandomFloats(s.OutSize(), 7);
  const GqaResult r = RunGqa(s, qkv, dout);
  const auto dout_d = AsFloat64(dout);
  auto loss = [&](const std::vector<double>& x) { return Dot(GqaRef(x, s), dout_d); };
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    EXPECT_LT(DirectionalError(loss, AsFloat64(qkv), r.dqkv, seed), kGradTol);
  }
}

TEST(GqaAttentionTest, BitwiseIndependentOfThreadCount) {
  const GqaShape s{2, 97, 8, 2, 16};
  const auto qkv = RandomFloats(s.QkvSize(), 8);
  const auto dout = RandomFloats(s.OutSize(), 9);
  GqaResult one, three;
  WithThreads(1, [&] { one = RunGqa(s, qkv, dout); });
  WithThreads(3, [&] { three = RunGqa(s, qkv, dout); });
  EXPECT_TRUE(BitwiseEqual(one.out, three.out));
  EXPECT_TRUE(BitwiseEqual(one.lse, three.lse));
  EXPECT_TRUE(BitwiseEqual(one.dqkv, three.dqkv));
}

}  // namespace
}  // namespace spillway::kernels::testing
