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

// AdamWParts over a Unit-like list of parts (gaps between them, an empty one, odd offsets and
// lengths, with and without weight decay) is one AdamW call per part, bitwise; the gaps stay.
TEST(AdamWTest, PartsAreOneCallPerPart) {
  const size_t n = 5000;
  const std::vector<size_t> ranges = {0, 1000, 1003, 1003, 1008, 2501, 2600, 2601, 3000, 4999};
  const std::vector<float> decays = {0.1f, 0.1f, 0.0f, 0.1f, 0.0f};
  const auto param0 = RandomFloats(n, 4), grad = RandomFloats(n, 5);
  AdamWParams p;
  p.lr = 1e-3f;
  p.step = 2;
  p.grad_scale = 0.5f;
  p.weight_decay = 7.0f;  // not read
  std::vector<float> param = param0, m(n, 0.1f), v(n, 0.2f);
  std::vector<float> want = param0, want_m = m, want_v = v;
  Cpu().AdamWParts(param.data(), nullptr, grad.data(), m.data(), v.data(), ranges.data(),
                   decays.data(), decays.size(), p);
  for (size_t k = 0; k < decays.size(); ++k) {
    AdamWParams q = p;
    q.weight_decay = decays[k];
    const size_t b = ranges[2 * k];
    Cpu().AdamW(want.data() + b, grad.data() + b, want_m.data() + b, want_v.data() + b,
                ranges[2 * k + 1] - b, q);
  }
  EXPECT_TRUE(BitwiseEqual(param, want));
  EXPECT_TRUE(BitwiseEqual(m, want_m));
  EXPECT_TRUE(BitwiseEqual(v, want_v));
  EXPECT_EQ(param[1001], param0[1001]);  // a gap
}

// With a bf16 copy, AdamWParts stores each part's updated parameters there as RoundToBf16 does,
// and leaves the copy's gaps alone; the fp32 results are those without a copy.
TEST(AdamWTest, PartsStoreTheUpdatedParametersInTheBf16Copy) {
  const size_t n = 3000;
  const std::vector<size_t> ranges = {1, 1000, 1004, 2003, 2500, 2999};
  const std::vector<float> decays = {0.1f, 0.0f, 0.1f};
  const auto param0 = RandomFloats(n, 6), grad = RandomFloats(n, 7);
  AdamWParams p;
  p.step = 1;
  std::vector<float> param = param0, m(n, 0.0f), v(n, 0.0f);
  std::vector<float> plain = param0, plain_m = m, plain_v = v;
  constexpr uint16_t kUntouched = 0x7fc1;
  std::vector<uint16_t> copy(n, kUntouched), want(n);
  Cpu().AdamWParts(param.data(), copy.data(), grad.data(), m.data(), v.data(), ranges.data(),
                   decays.data(), decays.size(), p);
  Cpu().AdamWParts(plain.data(), nullptr, grad.data(), plain_m.data(), plain_v.data(),
                   ranges.data(), decays.data(), decays.size(), p);
  EXPECT_TRUE(BitwiseEqual(param, plain));
  EXPECT_TRUE(BitwiseEqual(m, plain_m));
  Cpu().RoundToBf16(want.data(), param.data(), n);
  for (size_t i = 0; i < n; ++i) {
    const bool in_part = (i >= 1 && i < 1000) || (i >= 1004 && i < 2003) || (i >= 2500 && i < 2999);
    ASSERT_EQ(copy[i], in_part ? want[i] : kUntouched) << i;
  }
}

}  // namespace
}  // namespace spillway::kernels::testing
