#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

// losses (N) over the first V columns of logits (N,Vp); 0 for targets < 0.
std::vector<double> CrossEntropyRef(const std::vector<double>& logits,
                                    const std::vector<int32_t>& targets, int N, int V, int Vp) {
  std::vector<double> losses(N, 0.0);
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    double sum = 0.0;
    for (int i = 0; i < V; ++i) sum += std::exp(logits[n * Vp + i]);
    losses[n] = std::log(sum) - logits[n * Vp + targets[n]];
  }
  return losses;
}

TEST(CrossEntropyTest, LossesAndGradientMatchReference) {
  const int N = 10, V = 11, Vp = 16;
  const float scale = 1.0f / N;
  const auto logits = RandomFloats(N * Vp, 1, 3.0f);
  auto targets = RandomInts(N, V, 2);
  targets[3] = -1;
  targets[7] = -1;
  const auto logits_d = AsFloat64(logits);
  const auto ref = CrossEntropyRef(logits_d, targets, N, V, Vp);

  std::vector<float> losses(N, 9.0f), untouched = logits;
  Cpu().CrossEntropy(losses.data(), untouched.data(), targets.data(), N, V, Vp, 0.0f);
  EXPECT_LT(RelError(losses, ref), kForwardTol);
  EXPECT_TRUE(BitwiseEqual(untouched, logits));  // dlogits_scale == 0: logits left alone

  std::vector<float> dlogits = logits;
  Cpu().CrossEntropy(losses.data(), dlogits.data(), targets.data(), N, V, Vp, scale);
  EXPECT_LT(RelError(losses, ref), kForwardTol);
  // d(scale * sum of losses)/d logits; padding columns do not enter the loss, so their FD is 0.
  const auto fd = NumericGrad(
      [&](const std::vector<double>& x) {
        double s = 0.0;
        for (double l : CrossEntropyRef(x, targets, N, V, Vp)) s += l;
        return s * scale;
      },
      logits_d);
  EXPECT_LT(RelError(dlogits, fd), kGradTol);
  for (int n = 0; n < N; ++n) {
    for (int i = V; i < Vp; ++i) EXPECT_EQ(dlogits[n * Vp + i], 0.0f);
  }
  for (int n : {3, 7}) {
    EXPECT_EQ(losses[n], 0.0f);
    for (int i = 0; i < Vp; ++i) EXPECT_EQ(dlogits[n * Vp + i], 0.0f);
  }
}

TEST(CrossEntropyTest, BitwiseIndependentOfThreadCount) {
  const int N = 67, V = 1000, Vp = 1024;
  const auto logits = RandomFloats(N * Vp, 3, 3.0f);
  auto targets = RandomInts(N, V, 4);
  targets[5] = -1;
  auto run = [&](int threads) {
    std::vector<float> losses(N), dlogits = logits;
    WithThreads(threads, [&] {
      Cpu().CrossEntropy(losses.data(), dlogits.data(), targets.data(), N, V, Vp, 0.5f);
    });
    return std::vector<std::vector<float>>{losses, dlogits};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
