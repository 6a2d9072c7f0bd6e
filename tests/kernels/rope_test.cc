// Rotary position embeddings on the CPU backend against a float64 transcription of Hugging
// Face Llama's apply_rotary_pos_emb (cos/sin of cat(freqs, freqs), x * cos + rotate_half(x) * sin).
#include <cmath>
#include <cstddef>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

struct RopeShape {
  int B, T, NH, NKV, hs;
  size_t Row() const { return static_cast<size_t>(NH + 2 * NKV) * hs; }
  size_t Size() const { return static_cast<size_t>(B) * T * Row(); }
};

std::vector<double> RopeRef(std::vector<double> qkv, const RopeShape& s, double theta) {
  const int half = s.hs / 2;
  std::vector<double> cos(s.hs), sin(s.hs), x(s.hs);
  for (int b = 0; b < s.B; ++b) {
    for (int t = 0; t < s.T; ++t) {
      for (int i = 0; i < s.hs; ++i) {
        const double inv_freq = 1.0 / std::pow(theta, static_cast<double>(2 * (i % half)) / s.hs);
        cos[i] = std::cos(t * inv_freq);
        sin[i] = std::sin(t * inv_freq);
      }
      for (int head = 0; head < s.NH + s.NKV; ++head) {  // queries, then keys; not values
        double* h = &qkv[(static_cast<size_t>(b) * s.T + t) * s.Row() + head * s.hs];
        for (int i = 0; i < s.hs; ++i) x[i] = h[i];
        for (int i = 0; i < s.hs; ++i) {
          const double rotated = i < half ? -x[i + half] : x[i - half];  // rotate_half
          h[i] = x[i] * cos[i] + rotated * sin[i];
        }
      }
    }
  }
  return qkv;
}

TEST(RopeTest, ForwardMatchesHuggingFaceFormula) {
  const RopeShape s{2, 37, 4, 2, 16};
  for (double theta : {10000.0, 500000.0}) {
    SCOPED_TRACE(theta);
    const auto qkv = RandomFloats(s.Size(), 1);
    std::vector<float> got = qkv;
    Cpu().RopeForward(got.data(), s.B, s.T, s.NH, s.NKV, s.hs, theta);
    EXPECT_LT(RelError(got, RopeRef(AsFloat64(qkv), s, theta)), kForwardTol);
    // Value heads and position 0 are left exactly as they were.
    for (size_t row = 0; row < static_cast<size_t>(s.B) * s.T; ++row) {
      const size_t v0 = row * s.Row() + static_cast<size_t>(s.NH + s.NKV) * s.hs;
      for (size_t i = v0; i < (row + 1) * s.Row(); ++i) ASSERT_EQ(got[i], qkv[i]);
      if (row % s.T == 0) {
        for (size_t i = row * s.Row(); i < v0; ++i) ASSERT_EQ(got[i], qkv[i]);
      }
    }
  }
}

TEST(RopeTest, BackwardMatchesFiniteDifferences) {
  const RopeShape s{2, 5, 2, 1, 6};
  const double theta = 10000.0;
  const auto qkv = RandomFloats(s.Size(), 2);
  const auto dout = RandomFloats(s.Size(), 3);
  std::vector<float> dqkv = dout;
  Cpu().RopeBackward(dqkv.data(), s.B, s.T, s.NH, s.NKV, s.hs, theta);
  const auto dout_d = AsFloat64(dout);
  const auto fd =
      NumericGrad([&](const std::vector<double>& x) { return Dot(RopeRef(x, s, theta), dout_d); },
                  AsFloat64(qkv));
  EXPECT_LT(RelError(dqkv, fd), kGradTol);
}

TEST(RopeTest, BackwardUndoesForward) {
  const RopeShape s{3, 64, 4, 4, 32};
  const auto qkv = RandomFloats(s.Size(), 4);
  std::vector<float> x = qkv;
  Cpu().RopeForward(x.data(), s.B, s.T, s.NH, s.NKV, s.hs, 10000.0);
  Cpu().RopeBackward(x.data(), s.B, s.T, s.NH, s.NKV, s.hs, 10000.0);
  EXPECT_LT(RelError(x, AsFloat64(qkv)), 1e-6);
}

TEST(RopeTest, BitwiseIndependentOfThreadCount) {
  const RopeShape s{2, 97, 6, 2, 64};
  const auto qkv = RandomFloats(s.Size(), 5);
  auto run = [&](int threads) {
    std::vector<float> x = qkv, y = qkv;
    WithThreads(threads, [&] {
      Cpu().RopeForward(x.data(), s.B, s.T, s.NH, s.NKV, s.hs, 10000.0);
      Cpu().RopeBackward(y.data(), s.B, s.T, s.NH, s.NKV, s.hs, 10000.0);
    });
    return std::vector<std::vector<float>>{x, y};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
