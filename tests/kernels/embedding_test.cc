#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

std::vector<double> EmbeddingRef(const std::vector<int32_t>& tokens, const std::vector<double>& wte,
                                 const std::vector<double>& wpe, int B, int T, int C) {
  std::vector<double> out(static_cast<size_t>(B) * T * C);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      for (int c = 0; c < C; ++c) {
        out[(b * T + t) * C + c] = wte[tokens[b * T + t] * C + c] + wpe[t * C + c];
      }
    }
  }
  return out;
}

TEST(EmbeddingTest, ForwardMatchesReference) {
  const int B = 3, T = 7, C = 20, Vp = 16, maxT = 9;
  const auto tokens = RandomInts(B * T, 11, 1);
  const auto wte = RandomFloats(Vp * C, 2);
  const auto wpe = RandomFloats(maxT * C, 3);
  std::vector<float> out(B * T * C);
  Cpu().EmbeddingForward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  EXPECT_LT(RelError(out, EmbeddingRef(tokens, AsFloat64(wte), AsFloat64(wpe), B, T, C)),
            kForwardTol);
}

TEST(EmbeddingTest, BackwardMatchesFiniteDifferencesAndAccumulates) {
  // V = 4 < B*T, so tokens repeat and their gradients must add up.
  const int B = 2, T = 5, C = 8, Vp = 6, maxT = 7;
  const auto tokens = RandomInts(B * T, 4, 4);
  const auto wte = RandomFloats(Vp * C, 5);
  const auto wpe = RandomFloats(maxT * C, 6);
  const auto dout = RandomFloats(B * T * C, 7);
  std::vector<float> dwte(Vp * C), dwpe(maxT * C);
  Cpu().EmbeddingBackward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);

  const auto wte_d = AsFloat64(wte), wpe_d = AsFloat64(wpe), dout_d = AsFloat64(dout);
  EXPECT_LT(RelError(dwte, NumericGrad(
                               [&](const std::vector<double>& x) {
                                 return Dot(EmbeddingRef(tokens, x, wpe_d, B, T, C), dout_d);
                               },
                               wte_d)),
            kGradTol);
  EXPECT_LT(RelError(dwpe, NumericGrad(
                               [&](const std::vector<double>& x) {
                                 return Dot(EmbeddingRef(tokens, wte_d, x, B, T, C), dout_d);
                               },
                               wpe_d)),
            kGradTol);

  std::vector<float> dwte2 = dwte, dwpe2 = dwpe;
  Cpu().EmbeddingBackward(dwte2.data(), dwpe2.data(), dout.data(), tokens.data(), B, T, C);
  std::vector<double> twice_wte(dwte.size()), twice_wpe(dwpe.size());
  for (size_t i = 0; i < dwte.size(); ++i) twice_wte[i] = 2.0 * dwte[i];
  for (size_t i = 0; i < dwpe.size(); ++i) twice_wpe[i] = 2.0 * dwpe[i];
  EXPECT_LT(RelError(dwte2, twice_wte), kForwardTol);
  EXPECT_LT(RelError(dwpe2, twice_wpe), kForwardTol);
}

TEST(EmbeddingTest, BitwiseIndependentOfThreadCount) {
  const int B = 4, T = 33, C = 200, Vp = 24;
  const auto tokens = RandomInts(B * T, 20, 8);
  const auto wte = RandomFloats(Vp * C, 9);
  const auto wpe = RandomFloats(T * C, 10);
  const auto dout = RandomFloats(B * T * C, 11);
  auto run = [&](int threads) {
    std::vector<float> out(B * T * C), dwte(Vp * C), dwpe(T * C);
    WithThreads(threads, [&] {
      Cpu().EmbeddingForward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
      Cpu().EmbeddingBackward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
    });
    return std::vector<std::vector<float>>{out, dwte, dwpe};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

// Without position embedding (Llama): wpe = null and dwpe = null give the token rows alone, and
// the same dwte as with a position table.
TEST(EmbeddingTest, WithoutPositionEmbedding) {
  const int B = 2, T = 5, C = 12, Vp = 6;
  const auto tokens = RandomInts(B * T, 4, 8);
  const auto wte = RandomFloats(Vp * C, 9);
  const auto dout = RandomFloats(B * T * C, 10);
  std::vector<float> out(B * T * C, 3.0f);
  Cpu().EmbeddingForward(out.data(), tokens.data(), wte.data(), nullptr, B, T, C);
  const std::vector<double> zeros(static_cast<size_t>(T) * C, 0.0);
  EXPECT_EQ(RelError(out, EmbeddingRef(tokens, AsFloat64(wte), zeros, B, T, C)), 0.0);

  std::vector<float> dwte(Vp * C), dwte_with(Vp * C), dwpe(T * C);
  Cpu().EmbeddingBackward(dwte.data(), nullptr, dout.data(), tokens.data(), B, T, C);
  Cpu().EmbeddingBackward(dwte_with.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
  EXPECT_TRUE(BitwiseEqual(dwte, dwte_with));
}

}  // namespace
}  // namespace spillway::kernels::testing
