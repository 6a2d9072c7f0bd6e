// CUDA matmul (cuBLASLt) and attention vs the CPU backend, plus bitwise determinism.
//
// Tolerance: kCudaFp32Tol (1e-5 relative L2) throughout. The largest reduction is the dinp GEMM
// of the GPT-2-like shape (K = OC = 3072); on an H100 the CPU-CUDA difference there was 1.0e-6,
// everything else below 6e-7, so no shape needs a looser bound.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

size_t Prod(int a, int b) { return static_cast<size_t>(a) * static_cast<size_t>(b); }

// `offset` leading filler floats, so that x starts at device pointer base + offset.
std::vector<float> Padded(const std::vector<float>& x, size_t offset) {
  std::vector<float> p(offset, -3.0f);
  p.insert(p.end(), x.begin(), x.end());
  return p;
}

std::vector<float> Unpadded(const DeviceArray<float>& a, size_t offset) {
  const std::vector<float> p = a.Download();
  return {p.begin() + static_cast<std::ptrdiff_t>(offset), p.end()};
}

void ExpectSynchronized(Ops& ops) {
  const absl::Status status = ops.Synchronize();
  EXPECT_TRUE(status.ok()) << status;
}

// ------------------------------------------------------------------------------------------
// Matmul

struct MatmulShape {
  int N, C, OC;
};

constexpr MatmulShape kSmallMatmul{37, 70, 45};
constexpr MatmulShape kGpt2Matmul{1024, 768, 3072};

// out via the GPU with every buffer starting `offset` floats into its allocation.
std::vector<float> GpuMatmulForward(Ops& gpu, const std::vector<float>& inp,
                                    const std::vector<float>& weight,
                                    const std::vector<float>* bias, MatmulShape s,
                                    size_t offset = 0,
                                    const std::vector<float>* residual = nullptr) {
  DeviceArray<float> d_inp(Padded(inp, offset)), d_weight(Padded(weight, offset));
  DeviceArray<float> d_bias(Padded(bias != nullptr ? *bias : std::vector<float>(), offset));
  DeviceArray<float> d_res(Padded(residual != nullptr ? *residual : std::vector<float>(), offset));
  // The output is overwritten: start it at a value that would show.
  DeviceArray<float> d_out(Padded(std::vector<float>(Prod(s.N, s.OC), 5.0f), offset));
  gpu.MatmulForward(d_out.get() + offset, d_inp.get() + offset, d_weight.get() + offset,
                    bias != nullptr ? d_bias.get() + offset : nullptr,
                    residual != nullptr ? d_res.get() + offset : nullptr, s.N, s.C, s.OC);
  ExpectSynchronized(gpu);
  return Unpadded(d_out, offset);
}

void ExpectMatmulForwardMatches(Ops& gpu, MatmulShape s, bool with_bias, uint64_t seed,
                                size_t offset = 0, bool with_residual = false,
                                double tol = kCudaFp32Tol) {
  SCOPED_TRACE(::testing::Message()
               << "N=" << s.N << " C=" << s.C << " OC=" << s.OC << " bias=" << with_bias
               << " offset=" << offset << " residual=" << with_residual);
  const auto inp = RandomFloats(Prod(s.N, s.C), seed);
  const auto weight = RandomFloats(Prod(s.OC, s.C), seed + 1);
  const auto bias = RandomFloats(s.OC, seed + 2);
  const auto residual = RandomFloats(Prod(s.N, s.OC), seed + 3);
  const std::vector<float>* b = with_bias ? &bias : nullptr;
  const std::vector<float>* r = with_residual ? &residual : nullptr;
  std::vector<float> want(Prod(s.N, s.OC));
  Cpu().MatmulForward(want.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr,
                      with_residual ? residual.data() : nullptr, s.N, s.C, s.OC);
  EXPECT_LT(RelError(GpuMatmulForward(gpu, inp, weight, b, s, offset, r), want), tol);
}

struct MatmulBackwardCase {
  MatmulShape s;
  bool with_bias;
  std::vector<float> dout, inp, weight;
  std::vector<float> dinp0, dweight0, dbias0;  // non-zero: checks "=" for dinp, "+=" for the rest
};

MatmulBackwardCase MakeMatmulBackwardCase(MatmulShape s, bool with_bias, uint64_t seed) {
  return {s,
          with_bias,
          RandomFloats(Prod(s.N, s.OC), seed),
          RandomFloats(Prod(s.N, s.C), seed + 1),
          RandomFloats(Prod(s.OC, s.C), seed + 2),
          RandomFloats(Prod(s.N, s.C), seed + 3),
          RandomFloats(Prod(s.OC, s.C), seed + 4),
          RandomFloats(s.OC, seed + 5)};
}

struct MatmulGrads {
  std::vector<float> dinp, dweight, dbias;
};

MatmulGrads CpuMatmulBackward(const MatmulBackwardCase& c) {
  MatmulGrads g{c.dinp0, c.dweight0, c.dbias0};
  Cpu().MatmulBackward(g.dinp.data(), g.dweight.data(), c.with_bias ? g.dbias.data() : nullptr,
                       c.dout.data(), c.inp.data(), c.weight.data(), c.s.N, c.s.C, c.s.OC);
  return g;
}

MatmulGrads GpuMatmulBackward(Ops& gpu, const MatmulBackwardCase& c, size_t offset = 0) {
  DeviceArray<float> dout(Padded(c.dout, offset)), inp(Padded(c.inp, offset)),
      weight(Padded(c.weight, offset)), dinp(Padded(c.dinp0, offset)),
      dweight(Padded(c.dweight0, offset)), dbias(Padded(c.dbias0, offset));
  gpu.MatmulBackward(dinp.get() + offset, dweight.get() + offset,
                     c.with_bias ? dbias.get() + offset : nullptr, dout.get() + offset,
                     inp.get() + offset, weight.get() + offset, c.s.N, c.s.C, c.s.OC);
  ExpectSynchronized(gpu);
  return {Unpadded(dinp, offset), Unpadded(dweight, offset), Unpadded(dbias, offset)};
}

void ExpectMatmulBackwardMatches(Ops& gpu, MatmulShape s, bool with_bias, uint64_t seed,
                                 size_t offset = 0) {
  SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC
                                    << " bias=" << with_bias << " offset=" << offset);
  const MatmulBackwardCase c = MakeMatmulBackwardCase(s, with_bias, seed);
  const MatmulGrads want = CpuMatmulBackward(c);
  const MatmulGrads got = GpuMatmulBackward(gpu, c, offset);
  EXPECT_LT(RelError(got.dinp, want.dinp), kCudaFp32Tol);
  EXPECT_LT(RelError(got.dweight, want.dweight), kCudaFp32Tol);
  if (with_bias) {
    EXPECT_LT(RelError(got.dbias, want.dbias), kCudaFp32Tol);
  } else {
    EXPECT_TRUE(BitwiseEqual(got.dbias, c.dbias0)) << "dbias = null must leave the buffer alone";
  }
}

TEST_F(CudaOpsTest, MatmulForwardWithBiasMatchesCpu) {
  ExpectMatmulForwardMatches(cuda(), kSmallMatmul, true, 10);
  ExpectMatmulForwardMatches(cuda(), kGpt2Matmul, true, 20);
}

TEST_F(CudaOpsTest, MatmulForwardWithoutBiasMatchesCpu) {
  ExpectMatmulForwardMatches(cuda(), kSmallMatmul, false, 30);
  ExpectMatmulForwardMatches(cuda(), kGpt2Matmul, false, 40);
}

// The residual add rides in cuBLASLt's beta * C (C = residual, not the output), on aligned and
// less aligned buffers, in fp32 and on bf16 copies.
TEST_F(CudaOpsTest, MatmulForwardWithResidualMatchesCpu) {
  ExpectMatmulForwardMatches(cuda(), kSmallMatmul, true, 12, 0, /*with_residual=*/true);
  ExpectMatmulForwardMatches(cuda(), kGpt2Matmul, true, 22, 0, true);
  ExpectMatmulForwardMatches(cuda(), kGpt2Matmul, false, 32, 0, true);
  ExpectMatmulForwardMatches(cuda(), kGpt2Matmul, true, 42, 1, true);
  Cpu().SetMatmulPrecision(MatmulPrecision::kBf16);
  cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
  ExpectMatmulForwardMatches(cuda(), kGpt2Matmul, true, 52, 0, true, /*tol=*/1e-4);
  Cpu().SetMatmulPrecision(MatmulPrecision::kFp32);
  cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
}

TEST_F(CudaOpsTest, MatmulBackwardAccumulatesLikeCpu) {
  ExpectMatmulBackwardMatches(cuda(), kSmallMatmul, true, 50);
  ExpectMatmulBackwardMatches(cuda(), kGpt2Matmul, true, 60);
}

TEST_F(CudaOpsTest, MatmulBackwardWithoutBiasMatchesCpu) {
  ExpectMatmulBackwardMatches(cuda(), kSmallMatmul, false, 70);
  ExpectMatmulBackwardMatches(cuda(), kGpt2Matmul, false, 80);
}

TEST_F(CudaOpsTest, MatmulBackwardBiasOverManyRowChunksMatchesCpu) {
  // The bias gradient splits the rows into chunks whose sums the last block of a column tile
  // adds: GPT-2's token count with OC = 768 (the most chunks), a row count no chunk size
  // divides, and an OC not divisible by 4 (a column per thread instead of 4).
  ExpectMatmulBackwardMatches(cuda(), MatmulShape{8192, 64, 768}, true, 55);
  ExpectMatmulBackwardMatches(cuda(), MatmulShape{4099, 32, 2304}, true, 56);
  ExpectMatmulBackwardMatches(cuda(), MatmulShape{2050, 16, 770}, true, 57);
}

TEST_F(CudaOpsTest, MatmulWorksOnLessAlignedSubBuffers) {
  // Spillway's sub-buffers are 64-byte aligned (16 floats); the op must also take any
  // 16-byte-aligned pointer (4 floats). The aligned GPT-2 shape and the odd one both.
  for (size_t offset : {size_t{4}, size_t{16}}) {
    ExpectMatmulForwardMatches(cuda(), kSmallMatmul, true, 90, offset);
    ExpectMatmulForwardMatches(cuda(), kGpt2Matmul, true, 91, offset);
    ExpectMatmulBackwardMatches(cuda(), kSmallMatmul, true, 92, offset);
    ExpectMatmulBackwardMatches(cuda(), kGpt2Matmul, true, 93, offset);
  }
}

TEST_F(CudaOpsTest, MatmulIsBitwiseDeterministic) {
  for (MatmulShape s : {kSmallMatmul, kGpt2Matmul}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    const MatmulBackwardCase c = MakeMatmulBackwardCase(s, true, 100);
    const MatmulGrads a = GpuMatmulBackward(cuda(), c);
    const MatmulGrads b = GpuMatmulBackward(cuda(), c);
    EXPECT_TRUE(BitwiseEqual(a.dinp, b.dinp));
    EXPECT_TRUE(BitwiseEqual(a.dweight, b.dweight));
    EXPECT_TRUE(BitwiseEqual(a.dbias, b.dbias));
    const auto bias = RandomFloats(s.OC, 101);
    EXPECT_TRUE(BitwiseEqual(GpuMatmulForward(cuda(), c.inp, c.weight, &bias, s),
                             GpuMatmulForward(cuda(), c.inp, c.weight, &bias, s)));
  }
}

// Mixed precision (SetMatmulPrecision): 16-bit operands, fp32 accumulation, on both backends.
// The products of 16-bit values are exact in fp32, so CUDA and the CPU (which rounds the
// operands to nearest even) differ by the accumulation order, and by one 16-bit ulp of an
// operand wherever cuBLAS converts otherwise (fp16, and bf16 with a dimension not divisible by
// 8; other bf16 GEMMs run on copies rounded to nearest even). Stated tolerances (relative L2): bf16
// 1e-2, fp16 2e-3 against the CPU at the same precision; the measured errors are printed. Against
// fp32 the bf16 result must differ (> 1e-4): the rounding is really applied.
TEST_F(CudaOpsTest, MatmulMixedPrecisionMatchesCpuRounding) {
  struct Case {
    MatmulPrecision precision;
    const char* name;
    double tol;
  };
  for (const Case& p :
       {Case{MatmulPrecision::kBf16, "bf16", 1e-2}, Case{MatmulPrecision::kFp16, "fp16", 2e-3}}) {
    for (MatmulShape s : {kSmallMatmul, kGpt2Matmul}) {
      SCOPED_TRACE(::testing::Message() << p.name << " N=" << s.N << " C=" << s.C);
      const MatmulBackwardCase c = MakeMatmulBackwardCase(s, true, 110);
      const auto bias = RandomFloats(s.OC, 111);
      std::vector<float> fp32(Prod(s.N, s.OC)), want(Prod(s.N, s.OC));
      Cpu().MatmulForward(fp32.data(), c.inp.data(), c.weight.data(), bias.data(), nullptr, s.N,
                          s.C, s.OC);
      Cpu().SetMatmulPrecision(p.precision);
      cuda().SetMatmulPrecision(p.precision);
      Cpu().MatmulForward(want.data(), c.inp.data(), c.weight.data(), bias.data(), nullptr, s.N,
                          s.C, s.OC);
      const MatmulGrads want_grads = CpuMatmulBackward(c);
      const std::vector<float> got = GpuMatmulForward(cuda(), c.inp, c.weight, &bias, s);
      const MatmulGrads got_grads = GpuMatmulBackward(cuda(), c);
      Cpu().SetMatmulPrecision(MatmulPrecision::kFp32);
      cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
      const double errors[] = {RelError(got, want), RelError(got_grads.dinp, want_grads.dinp),
                               RelError(got_grads.dweight, want_grads.dweight),
                               RelError(got_grads.dbias, want_grads.dbias)};
      std::printf("%s N=%d C=%d OC=%d: out %.2e dinp %.2e dweight %.2e dbias %.2e; vs fp32 %.2e\n",
                  p.name, s.N, s.C, s.OC, errors[0], errors[1], errors[2], errors[3],
                  RelError(got, fp32));
      for (double e : errors) EXPECT_LT(e, p.tol);
      if (p.precision == MatmulPrecision::kBf16) EXPECT_GT(RelError(got, fp32), 1e-4);
      if (p.precision == MatmulPrecision::kBf16 && s.N % 8 == 0 && s.C % 8 == 0 && s.OC % 8 == 0) {
        // Dimensions divisible by 8 run on bf16 copies rounded to nearest even, as the CPU
        // rounds: only the accumulation order differs.
        for (double e : errors) EXPECT_LT(e, 1e-4);
      }
    }
  }
}

// bf16 inputs (MatmulForwardBf16, MatmulBackwardBf16, whose dinp is bf16) at kBf16. Against the
// fp32-input ops on the same GPU fed the rounded input, i.e. the same bf16 operands, their dinp
// rounded: equal but for the algorithm cuBLASLt may pick for other pointers or a bf16 output
// (1e-6; dinp 1e-4, where such a difference may flip a rounding); the shape not divisible by 8
// widens the input and runs the very same GEMM (bitwise). Against the CPU's bf16 inputs: only the
// accumulation order differs where every dimension is a multiple of 8 (1e-4; dinp 1e-3, for the
// same rounding flips); otherwise cuBLASLt converts the fp32 weight inside the GEMM (the bf16
// tolerance of MatmulMixedPrecisionMatchesCpuRounding, 1e-2; measured 1.6e-3 to 2.5e-3 on an H100).
TEST_F(CudaOpsTest, MatmulBf16InputsMatchTheRoundedFp32InputAndCpu) {
  for (MatmulShape s : {kSmallMatmul, kGpt2Matmul}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    const MatmulBackwardCase c = MakeMatmulBackwardCase(s, true, 120);
    const auto bias = RandomFloats(s.OC, 121);
    const auto residual = RandomFloats(Prod(s.N, s.OC), 122);
    const std::vector<uint16_t> bits = Bf16Bits(c.inp);
    MatmulBackwardCase rounded = c;
    rounded.inp = Bf16Values(bits);
    Cpu().SetMatmulPrecision(MatmulPrecision::kBf16);
    cuda().SetMatmulPrecision(MatmulPrecision::kBf16);

    std::vector<float> cpu_out(Prod(s.N, s.OC));
    Cpu().MatmulForwardBf16(cpu_out.data(), bits.data(), c.weight.data(), bias.data(),
                            residual.data(), s.N, s.C, s.OC);
    MatmulGrads cpu{c.dinp0, c.dweight0, c.dbias0};
    std::vector<uint16_t> cpu_dinp16(c.dinp0.size());
    Cpu().MatmulBackwardBf16(cpu_dinp16.data(), cpu.dweight.data(), cpu.dbias.data(), c.dout.data(),
                             bits.data(), c.weight.data(), s.N, s.C, s.OC);
    cpu.dinp = Bf16Values(cpu_dinp16);

    const std::vector<float> f32_out =
        GpuMatmulForward(cuda(), rounded.inp, c.weight, &bias, s, 0, &residual);
    MatmulGrads f32 = GpuMatmulBackward(cuda(), rounded);
    f32.dinp = Bf16Values(Bf16Bits(f32.dinp));

    DeviceArray<uint16_t> d_bits(bits);
    DeviceArray<float> weight(c.weight), d_bias(bias), d_res(residual), dout(c.dout);
    DeviceArray<float> out(std::vector<float>(Prod(s.N, s.OC), 5.0f));
    DeviceArray<uint16_t> dinp(Bf16Bits(c.dinp0));
    DeviceArray<float> dweight(c.dweight0), dbias(c.dbias0);
    cuda().MatmulForwardBf16(out.get(), d_bits.get(), weight.get(), d_bias.get(), d_res.get(), s.N,
                             s.C, s.OC);
    cuda().MatmulBackwardBf16(dinp.get(), dweight.get(), dbias.get(), dout.get(), d_bits.get(),
                              weight.get(), s.N, s.C, s.OC);
    ExpectSynchronized(cuda());
    Cpu().SetMatmulPrecision(MatmulPrecision::kFp32);
    cuda().SetMatmulPrecision(MatmulPrecision::kFp32);

    const MatmulGrads got{Bf16Values(dinp.Download()), dweight.Download(), dbias.Download()};
    const std::vector<float> got_out = out.Download();
    const double vs_f32[] = {RelError(got_out, f32_out), RelError(got.dinp, f32.dinp),
                             RelError(got.dweight, f32.dweight), RelError(got.dbias, f32.dbias)};
    const double vs_cpu[] = {RelError(got_out, cpu_out), RelError(got.dinp, cpu.dinp),
                             RelError(got.dweight, cpu.dweight), RelError(got.dbias, cpu.dbias)};
    std::printf(
        "bf16 input N=%d C=%d OC=%d vs fp32 input: %.1e %.1e %.1e %.1e; vs cpu: %.1e %.1e "
        "%.1e %.1e\n",
        s.N, s.C, s.OC, vs_f32[0], vs_f32[1], vs_f32[2], vs_f32[3], vs_cpu[0], vs_cpu[1], vs_cpu[2],
        vs_cpu[3]);
    for (int i = 0; i < 4; ++i) EXPECT_LT(vs_f32[i], i == 1 ? 1e-4 : 1e-6) << i;
    const bool multiples_of_8 = s.N % 8 == 0 && s.C % 8 == 0 && s.OC % 8 == 0;
    // dinp is compared rounded to bf16: an accumulation-order difference of 1e-6 may flip a
    // rounding (measured 1.2e-4 on an H100).
    for (int i = 0; i < 4; ++i) {
      EXPECT_LT(vs_cpu[i], !multiples_of_8 ? 1e-2 : i == 1 ? 1e-3 : 1e-4) << i;
    }
    if (!multiples_of_8) {
      EXPECT_TRUE(BitwiseEqual(got_out, f32_out));
      EXPECT_TRUE(BitwiseEqual(got.dinp, f32.dinp));
      EXPECT_TRUE(BitwiseEqual(got.dweight, f32.dweight));
    }
  }
}

// MatmulBackwardBf16Grad (dout as bf16) against MatmulBackwardBf16 on the widened dout, at kBf16
// on the same GPU: the GEMMs read the same bf16 values and the bias gradient sums the same values
// in the same order (equal but for the algorithm cuBLASLt may pick for other pointers: 1e-6, and
// 1e-4 for the bf16 dinp, where that may flip a rounding; the bitwise verdict is printed); the
// shape not divisible by 8 takes the widening fallback.
TEST_F(CudaOpsTest, MatmulBackwardFromBf16GradIsTheWidenedGrad) {
  for (MatmulShape s : {kSmallMatmul, kGpt2Matmul}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    const auto dout16 = Bf16Bits(RandomFloats(Prod(s.N, s.OC), 170));
    const auto inp16 = Bf16Bits(RandomFloats(Prod(s.N, s.C), 171));
    const auto dw0 = RandomFloats(Prod(s.OC, s.C), 173);
    const auto db0 = RandomFloats(s.OC, 174);
    DeviceArray<uint16_t> d_dout16(dout16), d_inp16(inp16);
    DeviceArray<float> d_dout(Bf16Values(dout16)), weight(RandomFloats(Prod(s.OC, s.C), 172));
    DeviceArray<uint16_t> dinp(Prod(s.N, s.C)), dinp16(Prod(s.N, s.C));
    DeviceArray<float> dw(dw0), db(db0), dw16(dw0), db16(db0);
    cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
    cuda().MatmulBackwardBf16(dinp.get(), dw.get(), db.get(), d_dout.get(), d_inp16.get(),
                              weight.get(), s.N, s.C, s.OC);
    cuda().MatmulBackwardBf16Grad(dinp16.get(), dw16.get(), db16.get(), d_dout16.get(),
                                  d_inp16.get(), weight.get(), s.N, s.C, s.OC);
    ExpectSynchronized(cuda());
    cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
    const std::vector<float> got[] = {Bf16Values(dinp16.Download()), dw16.Download(),
                                      db16.Download()};
    const std::vector<float> want[] = {Bf16Values(dinp.Download()), dw.Download(), db.Download()};
    for (int i = 0; i < 3; ++i) {
      std::printf("bf16 grad N=%d C=%d OC=%d output %d: %.1e (bitwise %d)\n", s.N, s.C, s.OC, i,
                  RelError(got[i], want[i]), BitwiseEqual(got[i], want[i]) ? 1 : 0);
      EXPECT_LT(RelError(got[i], want[i]), i == 0 ? 1e-4 : 1e-6);
    }
    EXPECT_TRUE(BitwiseEqual(got[2], want[2]));  // the bias gradient: same kernel order
  }
}

// The matmul backwards given an fp32 dout with its copies (MatmulDout: round(dout), column sums)
// against the same from dout alone: the GEMMs read the same bf16 values (dinp and dweight
// bitwise), the bias gradient adds the given sums (fp32 tolerance: another summation order).
TEST_F(CudaOpsTest, MatmulBackwardsReadTheGradCopies) {
  const MatmulShape s = kGpt2Matmul;
  const auto dout = RandomFloats(Prod(s.N, s.OC), 180);
  const std::vector<float> sums = ColumnSums(dout, s.N, s.OC);
  const auto dw0 = RandomFloats(Prod(s.OC, s.C), 181);
  const auto db0 = RandomFloats(s.OC, 182);
  DeviceArray<float> d_dout(dout), d_sums(sums), weight(RandomFloats(Prod(s.OC, s.C), 183));
  DeviceArray<uint16_t> d_dout16(Bf16Bits(dout));
  DeviceArray<uint16_t> inp16(Bf16Bits(RandomFloats(Prod(s.N, s.C), 184)));
  DeviceArray<uint16_t> pre16(Bf16Bits(RandomFloats(Prod(s.N, s.C), 185)));
  cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
  for (const bool gelu : {false, true}) {
    SCOPED_TRACE(gelu ? "MatmulGeluBackwardBf16" : "MatmulBackwardBf16");
    DeviceArray<uint16_t> dinp(Prod(s.N, s.C)), dinp_c(Prod(s.N, s.C));
    DeviceArray<float> dw(dw0), db(db0), dw_c(dw0), db_c(db0);
    for (const bool copies : {false, true}) {
      const MatmulDout d =
          copies ? MatmulDout(d_dout.get(), d_dout16.get(), d_sums.get()) : d_dout.get();
      uint16_t* di = copies ? dinp_c.get() : dinp.get();
      float* w_grad = copies ? dw_c.get() : dw.get();
      float* b_grad = copies ? db_c.get() : db.get();
      if (gelu) {
        cuda().MatmulGeluBackwardBf16(di, w_grad, b_grad, d, inp16.get(), pre16.get(), weight.get(),
                                      s.N, s.C, s.OC);
      } else {
        cuda().MatmulBackwardBf16(di, w_grad, b_grad, d, inp16.get(), weight.get(), s.N, s.C, s.OC);
      }
    }
    ExpectSynchronized(cuda());
    EXPECT_EQ(dinp_c.Download(), dinp.Download());
    EXPECT_TRUE(BitwiseEqual(dw_c.Download(), dw.Download()));
    EXPECT_LE(RelError(db_c.Download(), db.Download()), kCudaFp32Tol);
  }
  cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
}

// MatmulForwardToBf16 (the GEMM writes bf16 and adds the bias rounded to bf16) against
// MatmulForwardBf16's fp32 output with that bias, rounded on the host: the same sums but for the
// algorithm (within a bf16 rounding, 4e-3; the share of equal
// bits is printed), and against the CPU's MatmulForwardToBf16 (the bf16 bound, 1e-2).
TEST_F(CudaOpsTest, MatmulForwardToBf16IsTheRoundedMatmul) {
  for (MatmulShape s : {kSmallMatmul, kGpt2Matmul}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    const auto bits = Bf16Bits(RandomFloats(Prod(s.N, s.C), 140));
    const auto weight = RandomFloats(Prod(s.OC, s.C), 141);
    const auto bias = RandomFloats(s.OC, 142);
    Cpu().SetMatmulPrecision(MatmulPrecision::kBf16);
    cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
    std::vector<uint16_t> cpu(Prod(s.N, s.OC));
    Cpu().MatmulForwardToBf16(cpu.data(), bits.data(), weight.data(), bias.data(), s.N, s.C, s.OC);
    DeviceArray<uint16_t> d_bits(bits), out16(Prod(s.N, s.OC));
    DeviceArray<float> d_w(weight), d_b(bias), out(Prod(s.N, s.OC));
    DeviceArray<float> d_b_rounded(Bf16Values(Bf16Bits(bias)));
    cuda().MatmulForwardBf16(out.get(), d_bits.get(), d_w.get(), d_b_rounded.get(), nullptr, s.N,
                             s.C, s.OC);
    cuda().MatmulForwardToBf16(out16.get(), d_bits.get(), d_w.get(), d_b.get(), s.N, s.C, s.OC);
    ExpectSynchronized(cuda());
    Cpu().SetMatmulPrecision(MatmulPrecision::kFp32);
    cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
    const std::vector<uint16_t> got = out16.Download();
    const std::vector<uint16_t> want = Bf16Bits(out.Download());
    size_t equal = 0;
    for (size_t i = 0; i < got.size(); ++i) equal += got[i] == want[i];
    const double vs_fp32 = RelError(Bf16Values(got), Bf16Values(want));
    const double vs_cpu = RelError(Bf16Values(got), Bf16Values(cpu));
    std::printf("to-bf16 N=%d C=%d OC=%d: vs rounded fp32 out %.1e (%.4f bitwise), vs cpu %.1e\n",
                s.N, s.C, s.OC, vs_fp32, static_cast<double>(equal) / got.size(), vs_cpu);
    EXPECT_LT(vs_fp32, 4e-3);
    EXPECT_LT(vs_cpu, 1e-2);
  }
}

// The MLP's fused ops on the GPU (cuBLASLt's GELU epilogues; the shape not divisible by 8 takes
// the GELU kernels after the unfused GEMMs) against the CPU's, on the same inputs: pre, out and
// dpre within the bf16 bound (1e-2; GELU of the fp32 sums on both sides, each rounded once), the
// accumulated weight and bias gradients, which no GELU touches, within 1e-5 where the GEMMs run
// on bf16 copies (elsewhere cuBLASLt rounds dout itself: the bf16 bound). pre is also the GPU's
// own MatmulForwardToBf16 output (4e-3: the algorithm may differ).
TEST_F(CudaOpsTest, MatmulGeluOpsMatchTheCpu) {
  for (MatmulShape s : {kSmallMatmul, kGpt2Matmul}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    const size_t n = Prod(s.N, s.OC);
    const auto bits = Bf16Bits(RandomFloats(Prod(s.N, s.C), 180));
    const auto weight = RandomFloats(Prod(s.OC, s.C), 181);
    const auto bias = RandomFloats(s.OC, 182);
    const auto dout = RandomFloats(Prod(s.N, s.C), 183);
    const auto weight2 = RandomFloats(Prod(s.C, s.OC), 184);
    const auto dw0 = RandomFloats(weight2.size(), 185);
    const auto db0 = RandomFloats(s.C, 186);
    Cpu().SetMatmulPrecision(MatmulPrecision::kBf16);
    cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
    std::vector<uint16_t> out(n), pre(n), dpre(n);
    std::vector<float> dw = dw0, db = db0;
    Cpu().MatmulGeluForwardToBf16(out.data(), pre.data(), bits.data(), weight.data(), bias.data(),
                                  s.N, s.C, s.OC);
    // The down-projection back to C channels, on the CPU's h and pre (the same inputs for both).
    Cpu().MatmulGeluBackwardBf16(dpre.data(), dw.data(), db.data(), dout.data(), out.data(),
                                 pre.data(), weight2.data(), s.N, s.OC, s.C);
    DeviceArray<uint16_t> d_bits(bits), g_out(n), g_pre(n), g_plain(n), g_dpre(n);
    DeviceArray<uint16_t> d_h(out), d_pre(pre);
    DeviceArray<float> d_w(weight), d_b(bias), d_dout(dout), d_w2(weight2), g_dw(dw0), g_db(db0);
    cuda().MatmulGeluForwardToBf16(g_out.get(), g_pre.get(), d_bits.get(), d_w.get(), d_b.get(),
                                   s.N, s.C, s.OC);
    cuda().MatmulForwardToBf16(g_plain.get(), d_bits.get(), d_w.get(), d_b.get(), s.N, s.C, s.OC);
    cuda().MatmulGeluBackwardBf16(g_dpre.get(), g_dw.get(), g_db.get(), d_dout.get(), d_h.get(),
                                  d_pre.get(), d_w2.get(), s.N, s.OC, s.C);
    ExpectSynchronized(cuda());
    Cpu().SetMatmulPrecision(MatmulPrecision::kFp32);
    cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
    const double errors[] = {
        RelError(Bf16Values(g_pre.Download()), Bf16Values(pre)),
        RelError(Bf16Values(g_out.Download()), Bf16Values(out)),
        RelError(Bf16Values(g_dpre.Download()), Bf16Values(dpre)),
        RelError(g_dw.Download(), dw),
        RelError(g_db.Download(), db),
        RelError(Bf16Values(g_pre.Download()), Bf16Values(g_plain.Download()))};
    std::printf(
        "gelu bf16 N=%d C=%d OC=%d vs cpu: pre %.1e out %.1e dpre %.1e dw %.1e db %.1e; pre vs "
        "unfused %.1e\n",
        s.N, s.C, s.OC, errors[0], errors[1], errors[2], errors[3], errors[4], errors[5]);
    for (int i = 0; i < 3; ++i) EXPECT_LT(errors[i], 1e-2) << "output " << i;
    const bool copies = s.N % 8 == 0 && s.C % 8 == 0 && s.OC % 8 == 0;
    EXPECT_LT(errors[3], copies ? 1e-5 : 1e-2);
    EXPECT_LT(errors[4], 1e-5);
    EXPECT_LT(errors[5], 4e-3);
  }
}

// Every matmul op once on the GPU, on inputs of seed `seed`, with the weight `w` and, if given,
// its bf16 copy `w16` (host values): their outputs one after the other, as on the CPU
// (bf16_inputs_test.cc).
std::vector<float> GpuAllMatmuls(Ops& gpu, MatmulShape s, const std::vector<float>& w,
                                 const std::vector<uint16_t>* w16, uint64_t seed) {
  const auto inp = RandomFloats(Prod(s.N, s.C), seed);
  DeviceArray<float> d_inp(inp), bias(RandomFloats(s.OC, seed + 1));
  DeviceArray<float> dout(RandomFloats(Prod(s.N, s.OC), seed + 2)), weight(w);
  DeviceArray<uint16_t> bits(Bf16Bits(inp)), copy(w16 != nullptr ? *w16 : Bf16Bits(w));
  const MatmulParam mw{weight.get(), w16 != nullptr ? copy.get() : nullptr};
  DeviceArray<float> out(Prod(s.N, s.OC)), dinp(Prod(s.N, s.C)), dw(Prod(s.OC, s.C)), db(s.OC);
  DeviceArray<uint16_t> out16(Prod(s.N, s.OC));
  std::vector<float> all;
  auto keep = [&](const std::vector<float>& x) { all.insert(all.end(), x.begin(), x.end()); };
  auto keep_grads = [&] {
    ExpectSynchronized(gpu);
    keep(dinp.Download()), keep(dw.Download()), keep(db.Download());
  };
  gpu.MatmulForward(out.get(), d_inp.get(), mw, bias.get(), nullptr, s.N, s.C, s.OC);
  ExpectSynchronized(gpu);
  keep(out.Download());
  gpu.MatmulBackward(dinp.get(), dw.get(), db.get(), dout.get(), d_inp.get(), mw, s.N, s.C, s.OC);
  keep_grads();
  gpu.MatmulForwardBf16(out.get(), bits.get(), mw, bias.get(), nullptr, s.N, s.C, s.OC);
  ExpectSynchronized(gpu);
  keep(out.Download());
  DeviceArray<uint16_t> dinp16(Prod(s.N, s.C));
  gpu.MatmulBackwardBf16(dinp16.get(), dw.get(), db.get(), dout.get(), bits.get(), mw, s.N, s.C,
                         s.OC);
  ExpectSynchronized(gpu);
  keep(Bf16Values(dinp16.Download())), keep(dw.Download()), keep(db.Download());
  gpu.MatmulForwardToBf16(out16.get(), bits.get(), mw, bias.get(), s.N, s.C, s.OC);
  ExpectSynchronized(gpu);
  keep(Bf16Values(out16.Download()));
  return all;
}

// A weight's bf16 copy (MatmulParam::b16) is what the GEMMs read at kBf16 instead of rounding the
// weight: given the copy of another weight they compute with that one (equal but for the
// algorithm cuBLASLt may pick for other pointers: 1e-6; the bitwise verdict is printed); at fp32
// the copy is not read (bitwise). RoundToBf16 is the CPU's rounding, bitwise.
TEST_F(CudaOpsTest, MatmulsReadTheWeightCopyAtBf16) {
  const MatmulShape s = kGpt2Matmul;
  const auto w = RandomFloats(Prod(s.OC, s.C), 160);
  const auto other = RandomFloats(w.size(), 161);
  const std::vector<uint16_t> other16 = Bf16Bits(other);
  DeviceArray<float> d_w(w);
  DeviceArray<uint16_t> rounded(w.size());
  cuda().RoundToBf16(rounded.get(), d_w.get(), w.size());
  ExpectSynchronized(cuda());
  EXPECT_EQ(rounded.Download(), Bf16Bits(w));

  cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
  const std::vector<float> copy_read = GpuAllMatmuls(cuda(), s, w, &other16, 162);
  const std::vector<float> other_rounded = GpuAllMatmuls(cuda(), s, other, nullptr, 162);
  cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
  const std::vector<float> fp32_copy = GpuAllMatmuls(cuda(), s, w, &other16, 162);
  const std::vector<float> fp32 = GpuAllMatmuls(cuda(), s, w, nullptr, 162);
  const double err = RelError(copy_read, other_rounded);
  std::printf("weight copy at bf16: vs rounding the weight %.1e (bitwise %d)\n", err,
              BitwiseEqual(copy_read, other_rounded) ? 1 : 0);
  EXPECT_LT(err, 1e-6);
  EXPECT_TRUE(BitwiseEqual(fp32_copy, fp32));
}

// Autotuned GEMMs (Ops::SetMatmulAutotune: the fastest of cuBLASLt's first 8 algorithms per
// problem, on a backend of their own, since the choice is kept per handle) compute every matmul op
// as the heuristic's first algorithm does, within 1e-5 at bf16 (only the order of the fp32 sums
// may differ; the bitwise verdict is printed).
TEST_F(CudaOpsTest, AutotunedMatmulsMatchTheHeuristicsChoice) {
  absl::StatusOr<std::unique_ptr<Ops>> tuned = CreateOps("cuda");
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  (*tuned)->SetMatmulPrecision(MatmulPrecision::kBf16);
  (*tuned)->SetMatmulAutotune(true);
  const MatmulShape s = kGpt2Matmul;
  const auto w = RandomFloats(Prod(s.OC, s.C), 190);
  cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
  const std::vector<float> first = GpuAllMatmuls(cuda(), s, w, nullptr, 191);
  cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
  const std::vector<float> fastest = GpuAllMatmuls(**tuned, s, w, nullptr, 191);
  const double err = RelError(fastest, first);
  std::printf("autotuned bf16 matmuls vs the heuristic's first: %.1e (bitwise %d)\n", err,
              BitwiseEqual(fastest, first) ? 1 : 0);
  EXPECT_LT(err, 1e-5);
}

// The attention ops on bf16 qkv and out (AttentionForwardBf16 / AttentionBackwardBf16) against the
// fp32 ops on the same values widened, at kBf16 on the same GPU: the output is the fp32 op's
// rounded, and the gradient (from a bf16 dout) the fp32 op's given that rounded output and the
// widened dout, rounded, bitwise, where the
// tensor-core kernels read and write bf16 as it is (head sizes 64, 128) and where it is widened
// and rounded around the fp32 kernels (33). Given the QKV projection's bias gradient, the backward
// writes the same dqkv and adds its column sums (against the CPU's sums of the same dqkv; the
// kernels add them in another order).
TEST_F(CudaOpsTest, AttentionOnBf16QkvIsAttentionOnTheWidenedQkv) {
  struct Shape {
    int B, T, C, NH;
  };
  for (const Shape& s : {Shape{2, 128, 256, 4}, Shape{1, 200, 256, 2}, Shape{1, 70, 99, 3},
                         Shape{3, 300, 768, 12}}) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " NH=" << s.NH);
    const size_t rows = Prod(s.B, s.T);
    const auto bits = Bf16Bits(RandomFloats(rows * 3 * s.C, 150));
    const auto dout16 = Bf16Bits(RandomFloats(rows * s.C, 151));
    cuda().SetMatmulPrecision(MatmulPrecision::kBf16);
    DeviceArray<uint16_t> qkv16(bits), out16(rows * s.C), d_dout16(dout16);
    DeviceArray<float> qkv(Bf16Values(bits)), d_dout(Bf16Values(dout16));
    DeviceArray<float> out(rows * s.C), lse(Prod(s.B * s.NH, s.T)), dqkv(rows * 3 * s.C);
    DeviceArray<float> lse16(Prod(s.B * s.NH, s.T));
    DeviceArray<uint16_t> dqkv16(rows * 3 * s.C);
    cuda().AttentionForward(out.get(), lse.get(), qkv.get(), s.B, s.T, s.C, s.NH);
    cuda().AttentionForwardBf16(out16.get(), lse16.get(), qkv16.get(), s.B, s.T, s.C, s.NH);
    ExpectSynchronized(cuda());
    EXPECT_EQ(out16.Download(), Bf16Bits(out.Download()));
    EXPECT_TRUE(BitwiseEqual(lse16.Download(), lse.Download()));
    DeviceArray<float> out_rounded(Bf16Values(out16.Download()));
    cuda().AttentionBackward(dqkv.get(), d_dout.get(), qkv.get(), out_rounded.get(), lse.get(), s.B,
                             s.T, s.C, s.NH);
    cuda().AttentionBackwardBf16(dqkv16.get(), nullptr, d_dout16.get(), qkv16.get(), out16.get(),
                                 lse.get(), s.B, s.T, s.C, s.NH);
    const std::vector<float> bias0 = RandomFloats(3 * s.C, 152);
    DeviceArray<uint16_t> dqkv16_b(rows * 3 * s.C);
    DeviceArray<float> dbias(bias0);
    cuda().AttentionBackwardBf16(dqkv16_b.get(), dbias.get(), d_dout16.get(), qkv16.get(),
                                 out16.get(), lse.get(), s.B, s.T, s.C, s.NH);
    ExpectSynchronized(cuda());
    cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
    const std::vector<uint16_t> got16 = dqkv16.Download();
    EXPECT_EQ(got16, Bf16Bits(dqkv.Download()));
    EXPECT_EQ(dqkv16_b.Download(), got16);
    const std::vector<float> values = Bf16Values(got16);
    std::vector<double> want(bias0.begin(), bias0.end());  // in double: the sums' exact values
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < want.size(); ++c) want[c] += values[r * want.size() + c];
    }
    EXPECT_LT(RelError(dbias.Download(), want), 1e-5);
  }
}

// ------------------------------------------------------------------------------------------
// Attention

struct AttentionShape {
  int B, T, C, NH;
};

constexpr AttentionShape kAttentionShapes[] = {
    {2, 7, 16, 2},       // tiny: one partial tile, hs = 8
    {2, 128, 256, 4},    // hs = 64, whole tiles
    {1, 1024, 768, 12},  // GPT-2 small
    {1, 70, 99, 3},      // hs = 33: a partial lane chunk, a partial last tile
    {2, 45, 400, 2},     // hs = 200: 8 chunks, more than 48 KiB of shared memory
};

struct AttentionCase {
  AttentionShape s;
  std::vector<float> qkv, dout;
  std::vector<float> out, lse;  // the CPU forward's, the backward's inputs on both sides
};

AttentionCase MakeAttentionCase(AttentionShape s, uint64_t seed) {
  AttentionCase c{
      s, RandomFloats(Prod(s.B * s.T, 3 * s.C), seed), RandomFloats(Prod(s.B * s.T, s.C), seed + 1),
      std::vector<float>(Prod(s.B * s.T, s.C)), std::vector<float>(Prod(s.B * s.NH, s.T))};
  Cpu().AttentionForward(c.out.data(), c.lse.data(), c.qkv.data(), s.B, s.T, s.C, s.NH);
  return c;
}

struct AttentionForwardResult {
  std::vector<float> out, lse;
};

AttentionForwardResult GpuAttentionForward(Ops& gpu, const AttentionCase& c) {
  const AttentionShape s = c.s;
  DeviceArray<float> qkv(c.qkv);
  DeviceArray<float> out(std::vector<float>(c.out.size(), 5.0f));
  DeviceArray<float> lse(std::vector<float>(c.lse.size(), 5.0f));
  gpu.AttentionForward(out.get(), lse.get(), qkv.get(), s.B, s.T, s.C, s.NH);
  ExpectSynchronized(gpu);
  return {out.Download(), lse.Download()};
}

// dqkv from the GPU backward, given the CPU forward's out and lse.
std::vector<float> GpuAttentionBackward(Ops& gpu, const AttentionCase& c) {
  const AttentionShape s = c.s;
  DeviceArray<float> qkv(c.qkv), dout(c.dout), out(c.out), lse(c.lse);
  // dqkv is overwritten: start it at a value that would show.
  DeviceArray<float> dqkv(std::vector<float>(c.qkv.size(), 7.0f));
  gpu.AttentionBackward(dqkv.get(), dout.get(), qkv.get(), out.get(), lse.get(), s.B, s.T, s.C,
                        s.NH);
  ExpectSynchronized(gpu);
  return dqkv.Download();
}

TEST_F(CudaOpsTest, AttentionForwardMatchesCpu) {
  uint64_t seed = 200;
  for (AttentionShape s : kAttentionShapes) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " NH=" << s.NH);
    const AttentionCase c = MakeAttentionCase(s, seed += 10);
    const AttentionForwardResult got = GpuAttentionForward(cuda(), c);
    EXPECT_LT(RelError(got.out, c.out), kCudaFp32Tol);
    EXPECT_LT(RelError(got.lse, c.lse), kCudaFp32Tol);
  }
}

TEST_F(CudaOpsTest, AttentionBackwardMatchesCpu) {
  uint64_t seed = 300;
  for (AttentionShape s : kAttentionShapes) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " NH=" << s.NH);
    const AttentionCase c = MakeAttentionCase(s, seed += 10);
    std::vector<float> want(c.qkv.size(), 7.0f);
    Cpu().AttentionBackward(want.data(), c.dout.data(), c.qkv.data(), c.out.data(), c.lse.data(),
                            s.B, s.T, s.C, s.NH);
    EXPECT_LT(RelError(GpuAttentionBackward(cuda(), c), want), kCudaFp32Tol);
  }
}

TEST_F(CudaOpsTest, AttentionIsBitwiseDeterministic) {
  for (AttentionShape s : {kAttentionShapes[1], kAttentionShapes[2]}) {
    SCOPED_TRACE(::testing::Message()
                 << "B=" << s.B << " T=" << s.T << " C=" << s.C << " NH=" << s.NH);
    const AttentionCase c = MakeAttentionCase(s, 400);
    EXPECT_TRUE(BitwiseEqual(GpuAttentionBackward(cuda(), c), GpuAttentionBackward(cuda(), c)));
    const AttentionForwardResult a = GpuAttentionForward(cuda(), c);
    const AttentionForwardResult b = GpuAttentionForward(cuda(), c);
    EXPECT_TRUE(BitwiseEqual(a.out, b.out));
    EXPECT_TRUE(BitwiseEqual(a.lse, b.lse));
  }
}

}  // namespace
}  // namespace spillway::kernels::testing
