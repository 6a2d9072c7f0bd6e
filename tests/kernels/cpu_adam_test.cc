// The SIMD CPU AdamW (kernels/cpu/cpu_adam.h) against the reference kernels/cpu/adamw.cc:
// bitwise, on every instruction set this machine supports.
#include "kernels/cpu/cpu_adam.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/safetensors.h"
#include "gtest/gtest.h"
#include "kernels/cpu/adamw.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

using cpu::CpuIsa;

struct State {
  std::vector<float> param, m, v;
};

State InitialState(size_t n) {
  return {RandomFloats(n, 11), RandomFloats(n, 12, 0.01f), std::vector<float>(n, 0.0f)};
}

void ExpectBf16Of(const std::vector<uint16_t>& bf16, const std::vector<float>& fp32) {
  ASSERT_EQ(bf16.size(), fp32.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < fp32.size(); ++i) {
    if (bf16[i] != FloatToBf16(fp32[i]) && mismatches++ < 5) {
      ADD_FAILURE() << "element " << i << ": " << fp32[i] << " gave bf16 0x" << std::hex << bf16[i]
                    << ", want 0x" << FloatToBf16(fp32[i]);
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(CpuAdamTest, ReportsIsas) {
  const auto isas = cpu::SupportedCpuIsas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), CpuIsa::kScalar);
  EXPECT_EQ(isas.back(), cpu::BestCpuIsa());
  EXPECT_EQ(cpu::CpuIsaName(CpuIsa::kAvx512), "avx512");
  for (CpuIsa isa : isas) std::printf("supported: %s\n", std::string(cpu::CpuIsaName(isa)).c_str());
}

// Several steps on odd sizes, with and without weight decay and gradient scaling.
TEST(CpuAdamTest, EveryIsaBitwiseEqualsReference) {
  for (CpuIsa isa : cpu::SupportedCpuIsas()) {
    for (size_t n :
         {size_t{1}, size_t{7}, size_t{15}, size_t{17}, size_t{1003}, size_t{(1 << 14) * 3 + 5}}) {
      for (float wd : {0.0f, 0.1f}) {
        for (float grad_scale : {1.0f, 0.37f}) {
          SCOPED_TRACE(::testing::Message() << cpu::CpuIsaName(isa) << " n=" << n << " wd=" << wd
                                            << " grad_scale=" << grad_scale);
          AdamWParams p;
          p.lr = 1e-3f;
          p.weight_decay = wd;
          p.grad_scale = grad_scale;
          State want = InitialState(n), got = want;
          std::vector<uint16_t> bf16(n);
          for (int step = 1; step <= 4; ++step) {
            p.step = step;
            const auto grad = RandomFloats(n, 100 + step, step == 2 ? 1e3f : 1.0f);
            cpu::AdamW(want.param.data(), grad.data(), want.m.data(), want.v.data(), n, p);
            cpu::CpuAdamW(isa, got.param.data(), grad.data(), got.m.data(), got.v.data(),
                          step % 2 ? bf16.data() : nullptr, n, p);
            ASSERT_TRUE(BitwiseEqual(got.param, want.param)) << "param, step " << step;
            ASSERT_TRUE(BitwiseEqual(got.m, want.m)) << "m, step " << step;
            ASSERT_TRUE(BitwiseEqual(got.v, want.v)) << "v, step " << step;
            if (step % 2) ExpectBf16Of(bf16, got.param);
          }
        }
      }
    }
  }
}

// With lr = 0 the parameters pass through unchanged, so the bf16 output is exercised on
// special values: ties, values that round up to infinity, infinities, NaNs, denormals, zeros.
TEST(CpuAdamTest, Bf16OutputOnSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special = {0.0f,
                                -0.0f,
                                1.0f,
                                -1.5f,
                                inf,
                                -inf,
                                std::numeric_limits<float>::quiet_NaN(),
                                -std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::max(),
                                -std::numeric_limits<float>::max(),
                                std::numeric_limits<float>::denorm_min(),
                                -std::numeric_limits<float>::min() / 3.0f};
  for (uint32_t bits : {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f807fffu, 0x7f7f8000u,
                        0x7fa00001u, 0xffc00123u, 0x00008000u, 0x80018000u}) {
    float f;
    std::memcpy(&f, &bits, 4);
    special.push_back(f);
  }
  const auto noise = RandomFloats(41, 5);
  special.insert(special.end(), noise.begin(), noise.end());
  const size_t n = special.size();
  AdamWParams p;
  p.lr = 0.0f;
  const auto grad = RandomFloats(n, 6);
  for (CpuIsa isa : cpu::SupportedCpuIsas()) {
    SCOPED_TRACE(cpu::CpuIsaName(isa));
    std::vector<float> param = special, m(n, 0.0f), v(n, 0.0f);
    std::vector<uint16_t> bf16(n);
    cpu::CpuAdamW(isa, param.data(), grad.data(), m.data(), v.data(), bf16.data(), n, p);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(std::isnan(param[i]), std::isnan(special[i])) << i;
      if (!std::isnan(special[i])) {
        EXPECT_EQ(param[i], special[i]) << i;
      }
    }
    ExpectBf16Of(bf16, param);
  }
}

// The bf16 output takes non-temporal stores when aligned and plain ones otherwise: both equal.
TEST(CpuAdamTest, Bf16OutputAlignedAndUnaligned) {
  const size_t n = 3 * 16 + 5;
  AdamWParams p;
  p.lr = 1e-2f;
  const auto grad = RandomFloats(n, 7);
  for (CpuIsa isa : cpu::SupportedCpuIsas()) {
    for (size_t shift : {0, 1, 8}) {
      SCOPED_TRACE(::testing::Message() << cpu::CpuIsaName(isa) << " shift=" << shift);
      State s = InitialState(n);
      std::vector<uint16_t> storage(n + 64);
      const size_t aligned = (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64 / 2;
      uint16_t* out = storage.data() + aligned + shift;
      cpu::CpuAdamW(isa, s.param.data(), grad.data(), s.m.data(), s.v.data(), out, n, p);
      ExpectBf16Of(std::vector<uint16_t>(out, out + n), s.param);
    }
  }
}

TEST(CpuAdamTest, BitwiseIndependentOfThreadCount) {
  const size_t n = (1 << 14) * 5 + 3;
  const auto grad = RandomFloats(n, 3);
  AdamWParams p;
  p.lr = 3e-4f;
  p.weight_decay = 0.1f;
  p.step = 7;
  for (CpuIsa isa : cpu::SupportedCpuIsas()) {
    SCOPED_TRACE(cpu::CpuIsaName(isa));
    auto run = [&](int threads) {
      State s = InitialState(n);
      std::vector<uint16_t> bf16(n);
      WithThreads(threads, [&] {
        cpu::CpuAdamW(isa, s.param.data(), grad.data(), s.m.data(), s.v.data(), bf16.data(), n, p);
      });
      std::vector<float> bf16_as_float(n);
      for (size_t i = 0; i < n; ++i) bf16_as_float[i] = Bf16ToFloat(bf16[i]);
      return std::vector<std::vector<float>>{s.param, s.m, s.v, bf16_as_float};
    };
    const auto one = run(1), three = run(3);
    for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(one[i], three[i])) << i;
  }
}

// The CPU backend's AdamW is the fast kernel, so it equals the reference too.
TEST(CpuAdamTest, BackendUsesBitwiseEqualKernel) {
  const size_t n = 4099;
  AdamWParams p;
  p.lr = 1e-2f;
  p.weight_decay = 0.01f;
  p.step = 2;
  const auto grad = RandomFloats(n, 9);
  State want = InitialState(n), got = want;
  cpu::AdamW(want.param.data(), grad.data(), want.m.data(), want.v.data(), n, p);
  Cpu().AdamW(got.param.data(), grad.data(), got.m.data(), got.v.data(), n, p);
  EXPECT_TRUE(BitwiseEqual(got.param, want.param));
  EXPECT_TRUE(BitwiseEqual(got.m, want.m));
  EXPECT_TRUE(BitwiseEqual(got.v, want.v));
}

}  // namespace
}  // namespace spillway::kernels::testing
