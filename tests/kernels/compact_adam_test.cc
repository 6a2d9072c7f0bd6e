// Compact optimizer state (kernels/cpu/compact_adam.h, quant8.h) against the fp32 AdamW over a
// few hundred steps of a small quadratic problem, f(x) = 1/2 sum_i a_i (x_i - t_i)^2.
#include "kernels/cpu/compact_adam.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/safetensors.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_adam.h"
#include "kernels/cpu/quant8.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

using cpu::Quant8Code;

constexpr size_t kN = 1000;  // not a multiple of the 8-bit block
constexpr int kSteps = 300;

struct Quadratic {
  std::vector<float> a, target;
  Quadratic() : a(RandomFloats(kN, 21)), target(RandomFloats(kN, 22)) {
    for (float& ai : a) ai = 0.5f + std::fabs(ai);
  }
  std::vector<float> Grad(const std::vector<float>& x) const {
    std::vector<float> g(kN);
    for (size_t i = 0; i < kN; ++i) g[i] = a[i] * (x[i] - target[i]);
    return g;
  }
  double Loss(const std::vector<float>& x) const {
    double loss = 0.0;
    for (size_t i = 0; i < kN; ++i) loss += 0.5 * a[i] * (x[i] - target[i]) * (x[i] - target[i]);
    return loss;
  }
};

AdamWParams Params(float lr) {
  AdamWParams p;
  p.lr = lr;
  p.weight_decay = 0.01f;
  return p;
}

// ||got - want|| / ||want||.
double RelDiff(const std::vector<float>& got, const std::vector<float>& want) {
  return RelError(got, AsFloat64(want));
}

// The fp32 AdamW trajectory from x0.
std::vector<float> Fp32Run(const Quadratic& q, std::vector<float> x, float lr) {
  std::vector<float> m(kN, 0.0f), v(kN, 0.0f);
  AdamWParams p = Params(lr);
  for (int step = 1; step <= kSteps; ++step) {
    p.step = step;
    const auto g = q.Grad(x);
    cpu::CpuAdamW(x.data(), g.data(), m.data(), v.data(), nullptr, kN, p);
  }
  return x;
}

std::vector<float> RoundToBf16(std::vector<float> x) {
  for (float& xi : x) xi = Bf16ToFloat(FloatToBf16(xi));
  return x;
}

TEST(Quant8Test, CodesRoundTripAndEncodeToNearest) {
  for (Quant8Code kind : {Quant8Code::kSigned, Quant8Code::kUnsigned}) {
    SCOPED_TRACE(kind == Quant8Code::kSigned ? "signed" : "unsigned");
    for (int c = 0; c < 256; ++c) {
      const float x = cpu::Quant8Decode(kind, static_cast<uint8_t>(c));
      if (c == 0x80 && kind == Quant8Code::kSigned) continue;  // -0 encodes as 0
      EXPECT_EQ(cpu::Quant8Encode(kind, x, 1.0f), c) << x;
    }
    EXPECT_EQ(cpu::Quant8Decode(kind, 0), 0.0f);
    EXPECT_EQ(cpu::Quant8Decode(kind, kind == Quant8Code::kSigned ? 0x7f : 0xff), 1.0f);
    const auto xs = RandomFloats(2000, 23, 0.3f);
    for (float x : xs) {
      if (kind == Quant8Code::kUnsigned) x = std::fabs(x);
      x = std::fmax(-1.0f, std::fmin(1.0f, x));
      const float got = cpu::Quant8Decode(kind, cpu::Quant8Encode(kind, x, 1.0f));
      for (int c = 0; c < 256; ++c) {
        ASSERT_LE(std::fabs(got - x),
                  std::fabs(cpu::Quant8Decode(kind, static_cast<uint8_t>(c)) - x))
            << "x=" << x << " code " << c;
      }
    }
  }
}

// Stochastic rounding lands on one of the two neighbouring codes, unbiased on average.
TEST(Quant8Test, StochasticRoundingIsUnbiased) {
  for (Quant8Code kind : {Quant8Code::kSigned, Quant8Code::kUnsigned}) {
    SCOPED_TRACE(kind == Quant8Code::kSigned ? "signed" : "unsigned");
    const float x = 0.3f;  // between two codes
    std::vector<float> block(cpu::kQuantBlock, x);
    block[0] = 1.0f;  // the scale
    const float nearest = cpu::Quant8Decode(kind, cpu::Quant8Encode(kind, x, 1.0f));
    double sum = 0.0;
    int count = 0;
    std::vector<uint8_t> codes(block.size());
    for (uint64_t seed = 1; seed <= 200; ++seed) {
      ASSERT_EQ(cpu::Quant8EncodeBlock(kind, block.data(), codes.data(), block.size(),
                                       cpu::RoundingHash(seed, 0, 0)),
                1.0f);
      for (size_t i = 1; i < block.size(); ++i) {
        const float got = cpu::Quant8Decode(kind, codes[i]);
        ASSERT_LT(std::fabs(got - x), 2 * std::fabs(nearest - x) + 0.05f);
        sum += got;
        ++count;
      }
    }
    EXPECT_NEAR(sum / count, x, 1e-3);  // 51000 samples, code spacing ~0.03: sd ~7e-5
  }
}

// The values at which the encoder's answer can change: every code's magnitude and its
// neighbouring floats, every float whose low 19 mantissa bits are 0 (the encoder's lookup
// buckets) and the float below it, 0, the smallest subnormal, and 20000 random floats in [0, 1].
std::vector<float> EncoderProbes(const std::vector<float>& magnitudes) {
  std::vector<float> probes = {0.0f, std::numeric_limits<float>::denorm_min()};
  for (float m : magnitudes) {
    float below = m, above = m;
    for (int k = 0; k < 3; ++k, below = std::nextafter(below, 0.0f)) probes.push_back(below);
    for (int k = 0; k < 3 && above < 1.0f; ++k, above = std::nextafter(above, 2.0f)) {
      probes.push_back(above);
    }
  }
  for (uint32_t bits = 0; bits <= 0x3f800000u; bits += 1u << 19) {
    probes.push_back(std::bit_cast<float>(bits));
    if (bits > 0) probes.push_back(std::bit_cast<float>(bits - 1));
  }
  for (float r : RandomFloats(20000, 25)) probes.push_back(std::min(std::fabs(r), 1.0f));
  return probes;
}

// The encoder's lookup (a bucket table and one step) equals a binary search over the codes'
// magnitudes: the nearest code (ties to the smaller) and, with stochastic rounding, one of the two
// codes around the value, the lower one where the value is exactly a code.
TEST(Quant8Test, EncoderEqualsBinarySearchOverTheMagnitudes) {
  for (Quant8Code kind : {Quant8Code::kSigned, Quant8Code::kUnsigned}) {
    SCOPED_TRACE(kind == Quant8Code::kSigned ? "signed" : "unsigned");
    std::vector<float> magnitudes;
    for (int c = 0; c < (kind == Quant8Code::kSigned ? 128 : 256); ++c) {
      magnitudes.push_back(cpu::Quant8Decode(kind, static_cast<uint8_t>(c)));
    }
    ASSERT_TRUE(std::is_sorted(magnitudes.begin(), magnitudes.end()));
    const std::vector<float> probes = EncoderProbes(magnitudes);
    std::vector<float> block(cpu::kQuantBlock);
    std::vector<uint8_t> codes(block.size());
    for (size_t first = 0; first < probes.size(); first += block.size() - 1) {
      const size_t n = std::min(block.size() - 1, probes.size() - first);
      block[0] = 1.0f;  // the scale, so the block's values are the probes themselves
      std::copy_n(probes.begin() + first, n, block.begin() + 1);
      ASSERT_EQ(cpu::Quant8EncodeBlock(kind, block.data(), codes.data(), n + 1,
                                       cpu::RoundingHash(first, 1, 2)),
                1.0f);
      for (size_t i = 0; i < n; ++i) {
        const float a = probes[first + i];
        const size_t upper =
            std::lower_bound(magnitudes.begin(), magnitudes.end(), a) - magnitudes.begin();
        const size_t hi = std::max<size_t>(upper, 1);
        const bool nearer_above = magnitudes[hi] - a < a - magnitudes[hi - 1];
        const uint8_t nearest = static_cast<uint8_t>(upper == 0 ? 0 : hi - !nearer_above);
        ASSERT_EQ(cpu::Quant8Encode(kind, a, 1.0f), nearest) << a;
        if (kind == Quant8Code::kSigned && nearest != 0) {
          ASSERT_EQ(cpu::Quant8Encode(kind, -a, 1.0f), 0x80 | nearest) << -a;
        }
        const uint8_t stochastic = codes[1 + i];
        if (upper == 0 || magnitudes[upper] == a) {
          ASSERT_EQ(stochastic, upper) << a;
        } else {
          ASSERT_TRUE(stochastic == hi - 1 || stochastic == hi) << a;
        }
      }
    }
    EXPECT_EQ(cpu::Quant8Encode(kind, std::numeric_limits<float>::quiet_NaN(), 1.0f), 0);
  }
}

TEST(Quant8Test, BlockKeepsItsMaximumExactlyAndZerosAsZero) {
  auto x = RandomFloats(cpu::kQuantBlock, 24);
  x[17] = -5.0f;
  std::vector<uint8_t> codes(x.size());
  std::vector<float> back(x.size());
  const float scale = cpu::Quant8EncodeBlock(Quant8Code::kSigned, x.data(), codes.data(), x.size());
  EXPECT_EQ(scale, 5.0f);
  cpu::Quant8DecodeBlock(Quant8Code::kSigned, codes.data(), scale, back.data(), x.size());
  EXPECT_EQ(back[17], -5.0f);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], x[i], std::fabs(x[i]) / 16 + 1e-4);
  std::vector<float> zeros(10, 0.0f);
  EXPECT_EQ(cpu::Quant8EncodeBlock(Quant8Code::kUnsigned, zeros.data(), codes.data(), 10), 0.0f);
  cpu::Quant8DecodeBlock(Quant8Code::kUnsigned, codes.data(), 0.0f, back.data(), 10);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(back[i], 0.0f);
}

// bf16 m and v: the trajectory stays within 1% of fp32's (measured: 3.6e-3), loss within 2%.
TEST(CompactAdamTest, Bf16StateTracksFp32) {
  const Quadratic q;
  const auto x0 = RandomFloats(kN, 25);
  const auto want = Fp32Run(q, x0, 1e-2f);
  auto x = x0;
  std::vector<uint16_t> m(kN, 0), v(kN, 0);
  AdamWParams p = Params(1e-2f);
  for (int step = 1; step <= kSteps; ++step) {
    p.step = step;
    const auto g = q.Grad(x);
    cpu::AdamWBf16State(x.data(), g.data(), m.data(), v.data(), kN, p);
  }
  EXPECT_LT(q.Loss(want), 0.1 * q.Loss(x0));
  EXPECT_LT(RelDiff(x, want), 1e-2);
  EXPECT_NEAR(q.Loss(x), q.Loss(want), 0.02 * q.Loss(want));
}

// 8-bit block-wise m and v: within 5% of fp32 (measured: 2.0e-2; 6.1e-2 with round-to-nearest
// instead of stochastic rounding), loss within 5%.
TEST(CompactAdamTest, EightBitStateTracksFp32) {
  const Quadratic q;
  const auto x0 = RandomFloats(kN, 26);
  const auto want = Fp32Run(q, x0, 1e-2f);
  auto x = x0;
  const size_t blocks = (kN + cpu::kQuantBlock - 1) / cpu::kQuantBlock;
  std::vector<uint8_t> m(kN, 0), v(kN, 0);
  std::vector<float> m_scale(blocks, 0.0f), v_scale(blocks, 0.0f);
  AdamWParams p = Params(1e-2f);
  for (int step = 1; step <= kSteps; ++step) {
    p.step = step;
    const auto g = q.Grad(x);
    cpu::AdamW8bitState(x.data(), g.data(), m.data(), m_scale.data(), v.data(), v_scale.data(), kN,
                        p);
  }
  EXPECT_LT(RelDiff(x, want), 5e-2);
  EXPECT_NEAR(q.Loss(x), q.Loss(want), 0.05 * q.Loss(want));
}

// bf16 master weights with Kahan compensation follow fp32 to within bf16 resolution, at a
// learning rate whose steps are below half a bf16 ulp, where plain bf16 weights barely move
// (measured: 1.6e-3 with Kahan, 0.26 without).
TEST(CompactAdamTest, Bf16MasterWithKahanTracksFp32) {
  const Quadratic q;
  const auto x0 = RoundToBf16(RandomFloats(kN, 27));
  const float lr = 1e-3f;
  const auto want = Fp32Run(q, x0, lr);
  auto run = [&](bool kahan) {
    std::vector<uint16_t> x(kN), comp(kN, 0);
    for (size_t i = 0; i < kN; ++i) x[i] = FloatToBf16(x0[i]);
    std::vector<float> xf(kN), m(kN, 0.0f), v(kN, 0.0f);
    AdamWParams p = Params(lr);
    for (int step = 1; step <= kSteps; ++step) {
      p.step = step;
      for (size_t i = 0; i < kN; ++i) xf[i] = Bf16ToFloat(x[i]);
      const auto g = q.Grad(xf);
      if (!kahan) std::fill(comp.begin(), comp.end(), 0);
      cpu::AdamWBf16Master(x.data(), comp.data(), g.data(), m.data(), v.data(), kN, p);
    }
    for (size_t i = 0; i < kN; ++i) xf[i] = Bf16ToFloat(x[i]);
    return xf;
  };
  const double kahan = RelDiff(run(true), want), plain = RelDiff(run(false), want);
  EXPECT_LT(kahan, 5e-3);  // bf16's own resolution is 2^-9 ~ 2e-3
  EXPECT_GT(plain, 5 * kahan) << "kahan " << kahan;
}

TEST(CompactAdamTest, BitwiseIndependentOfThreadCount) {
  const size_t n = 3 * 64 * cpu::kQuantBlock + 77;
  const auto grad = RandomFloats(n, 28), x0 = RandomFloats(n, 29);
  AdamWParams p = Params(1e-2f);
  p.step = 3;
  auto run = [&](int threads) {
    std::vector<float> x8 = x0, xb = x0, m(n, 0.1f), v(n, 0.2f);
    std::vector<uint16_t> mb(n, FloatToBf16(0.1f)), vb(n, FloatToBf16(0.2f)), xm(n), comp(n, 0);
    for (size_t i = 0; i < n; ++i) xm[i] = FloatToBf16(x0[i]);
    const size_t blocks = (n + cpu::kQuantBlock - 1) / cpu::kQuantBlock;
    std::vector<uint8_t> m8(n, 3), v8(n, 200);
    std::vector<float> ms(blocks, 0.5f), vs(blocks, 0.25f);
    WithThreads(threads, [&] {
      cpu::AdamWBf16State(xb.data(), grad.data(), mb.data(), vb.data(), n, p);
      cpu::AdamW8bitState(x8.data(), grad.data(), m8.data(), ms.data(), v8.data(), vs.data(), n, p);
      cpu::AdamWBf16Master(xm.data(), comp.data(), grad.data(), m.data(), v.data(), n, p);
    });
    std::vector<float> all = xb;
    all.insert(all.end(), x8.begin(), x8.end());
    all.insert(all.end(), ms.begin(), ms.end());
    all.insert(all.end(), vs.begin(), vs.end());
    for (size_t i = 0; i < n; ++i) {
      all.push_back(static_cast<float>(m8[i] + 256 * v8[i]));
      all.push_back(Bf16ToFloat(mb[i]) + Bf16ToFloat(vb[i]));
      all.push_back(Bf16ToFloat(xm[i]));
      all.push_back(Bf16ToFloat(comp[i]));
    }
    return all;
  };
  EXPECT_TRUE(BitwiseEqual(run(1), run(3)));
}

}  // namespace
}  // namespace spillway::kernels::testing
