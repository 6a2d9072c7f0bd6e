#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

// One torch.optim.AdamW step in float64.
void AdamWRef(std::vector<double>& param, const std::vector<double>& grad, std::vector<double>& m,
              std::vector<double>& v, const AdamWParams& p) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), p.step);
  const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), p.step);
  for (size_t i = 0; i < param.size(); ++i) {
    const double g = grad[i] * p.grad_scale;
    m[i] = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    v[i] = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    param[i] = param[i] * (1.0 - static_cast<double>(p.lr) * p.weight_decay) -
               p.lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + p.eps);
  }
}

TEST(AdamWTest, StepsMatchReference) {
  const size_t n = 1000;
  auto param = RandomFloats(n, 1);
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  auto param_d = AsFloat64(param);
  std::vector<double> m_d(n, 0.0), v_d(n, 0.0);
  AdamWParams p;
  p.lr = 1e-2f;
  p.weight_decay = 0.1f;
  p.grad_scale = 0.5f;
  for (int step = 1; step <= 5; ++step) {
    const auto grad = RandomFloats(n, 100 + step);
    p.step = step;
    Cpu().AdamW(param.data(), grad.data(), m.data(), v.data(), n, p);
    AdamWRef(param_d, AsFloat64(grad), m_d, v_d, p);
    EXPECT_LT(RelError(param, param_d), kForwardTol) << "step " << step;
    EXPECT_LT(RelError(m, m_d), kForwardTol) << "step " << step;
    EXPECT_LT(RelError(v, v_d), kForwardTol) << "step " << step;
  }
}

TEST(AdamWTest, BitwiseIndependentOfThreadCount) {
  const size_t n = 100003;
  const auto param0 = RandomFloats(n, 2), grad = RandomFloats(n, 3);
  AdamWParams p;
  p.lr = 3e-4f;
  p.weight_decay = 0.1f;
  p.step = 3;
  auto run = [&](int threads) {
    std::vector<float> param = param0, m(n, 0.1f), v(n, 0.2f);
    WithThreads(threads, [&] { Cpu().AdamW(param.data(), grad.data(), m.data(), v.data(), n, p); });
    return std::vector<std::vector<float>>{param, m, v};
  };
  const auto one = run(1), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
}

}  // namespace
}  // namespace spillway::kernels::testing
