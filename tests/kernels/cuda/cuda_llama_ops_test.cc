// The Llama ops on the CUDA backend vs the CPU backend: RMSNorm, RoPE, SwiGLU, grouped-query
// attention, and the embedding without position table. Same fresh random inputs through both,
// outputs compared by relative L2 error (kCudaFp32Tol); gradient outputs that accumulate start
// from non-zero values. Also: GQA with NKV == NH is bitwise the plain attention kernel, and the
// reductions are bitwise reproducible.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

void ExpectSynchronized(Ops& ops) {
  const absl::Status status = ops.Synchronize();
  EXPECT_TRUE(status.ok()) << status;
}

size_t Prod(int a, int b) { return static_cast<size_t>(a) * static_cast<size_t>(b); }

// ------------------------------------------------------------------------------------------
// RMSNorm

struct RmsShape {
  int N, C;
};
constexpr RmsShape kRmsShapes[] = {{1, 1}, {7, 33}, {300, 200}, {1024, 4096}};

TEST_F(CudaOpsTest, RmsNormMatchesCpu) {
  uint64_t seed = 10;
  for (RmsShape s : kRmsShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const float eps = 1e-5f;
    const auto inp = RandomFloats(Prod(s.N, s.C), ++seed, 2.0f);
    const auto w = RandomFloats(s.C, ++seed);
    const auto dout = RandomFloats(Prod(s.N, s.C), ++seed);
    const auto dinp0 = RandomFloats(Prod(s.N, s.C), ++seed);
    const auto dw0 = RandomFloats(s.C, ++seed);

    std::vector<float> out(Prod(s.N, s.C)), rstd(s.N), dinp = dinp0, dw = dw0;
    Cpu().RmsNormForward(out.data(), rstd.data(), inp.data(), w.data(), eps, s.N, s.C);
    Cpu().RmsNormBackward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(),
                          s.N, s.C);

    DeviceArray<float> d_inp(inp), d_w(w), d_dout(dout), d_dinp(dinp0), d_dw(dw0);
    DeviceArray<float> d_out(std::vector<float>(out.size(), 5.0f)), d_rstd(rstd.size());
    cuda().RmsNormForward(d_out.get(), d_rstd.get(), d_inp.get(), d_w.get(), eps, s.N, s.C);
    cuda().RmsNormBackward(d_dinp.get(), d_dw.get(), d_dout.get(), d_inp.get(), d_w.get(),
                           d_rstd.get(), s.N, s.C);
    ExpectSynchronized(cuda());
    EXPECT_LT(RelError(d_out.Download(), out), kCudaFp32Tol);
    EXPECT_LT(RelError(d_rstd.Download(), rstd), kCudaFp32Tol);
    EXPECT_LT(RelError(d_dinp.Download(), dinp), kCudaFp32Tol);
    EXPECT_LT(RelError(d_dw.Download(), dw), kCudaFp32Tol);
  }
}

TEST_F(CudaOpsTest, RmsNormBackwardIsBitwiseDeterministic) {
  const int N = 1000, C = 300;
  const auto inp = RandomFloats(Prod(N, C), 1);
  const auto w = RandomFloats(C, 2);
  const auto dout = RandomFloats(Prod(N, C), 3);
  auto run = [&] {
    DeviceArray<float> d_inp(inp), d_w(w), d_dout(dout), d_out(Prod(N, C)), d_rstd(N),
        d_dinp(Prod(N, C)), d_dw(C);
    cuda().RmsNormForward(d_out.get(), d_rstd.get(), d_inp.get(), d_w.get(), 1e-6f, N, C);
    cuda().RmsNormBackward(d_dinp.get(), d_dw.get(), d_dout.get(), d_inp.get(), d_w.get(),
                           d_rstd.get(), N, C);
    ExpectSynchronized(cuda());
    return std::vector<std::vector<float>>{d_dinp.Download(), d_dw.Download()};
  };
  const auto a = run(), b = run();
  EXPECT_TRUE(BitwiseEqual(a[0], b[0]));
  EXPECT_TRUE(BitwiseEqual(a[1], b[1]));
}

// ------------------------------------------------------------------------------------------
// RoPE

struct RopeShape {
  int B, T, NH, NKV, hs;
  size_t Size() const { return static_cast<size_t>(B) * T * (NH + 2 * NKV) * hs; }
};
constexpr RopeShape kRopeShapes[] = {{1, 3, 1, 1, 2}, {2, 37, 4, 2, 16}, {1, 2048, 32, 8, 128}};

TEST_F(CudaOpsTest, RopeMatchesCpu) {
  uint64_t seed = 40;
  for (RopeShape s : kRopeShapes) {
    for (double theta : {10000.0, 500000.0}) {
      SCOPED_TRACE(::testing::Message() << "B=" << s.B << " T=" << s.T << " NH=" << s.NH << " NKV="
                                        << s.NKV << " hs=" << s.hs << " theta=" << theta);
      const auto x = RandomFloats(s.Size(), ++seed);
      std::vector<float> fwd = x, bwd = x;
      Cpu().RopeForward(fwd.data(), s.B, s.T, s.NH, s.NKV, s.hs, theta);
      Cpu().RopeBackward(bwd.data(), s.B, s.T, s.NH, s.NKV, s.hs, theta);
      DeviceArray<float> d_fwd(x), d_bwd(x);
      cuda().RopeForward(d_fwd.get(), s.B, s.T, s.NH, s.NKV, s.hs, theta);
      cuda().RopeBackward(d_bwd.get(), s.B, s.T, s.NH, s.NKV, s.hs, theta);
      ExpectSynchronized(cuda());
      EXPECT_LT(RelError(d_fwd.Download(), fwd), kCudaFp32Tol);
      EXPECT_LT(RelError(d_bwd.Download(), bwd), kCudaFp32Tol);
    }
  }
}

// ------------------------------------------------------------------------------------------
// SwiGLU

TEST_F(CudaOpsTest, SwiGluMatchesCpu) {
  uint64_t seed = 60;
  for (RmsShape s : {RmsShape{1, 1}, RmsShape{13, 37}, RmsShape{512, 11008}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " F=" << s.C);
    const int N = s.N, F = s.C;
    const auto gu = RandomFloats(Prod(N, 2 * F), ++seed, 4.0f);
    const auto dout = RandomFloats(Prod(N, F), ++seed);
    std::vector<float> out(Prod(N, F)), dgu(Prod(N, 2 * F));
    Cpu().SwiGluForward(out.data(), gu.data(), N, F);
    Cpu().SwiGluBackward(dgu.data(), dout.data(), gu.data(), N, F);
    DeviceArray<float> d_gu(gu), d_dout(dout);
    DeviceArray<float> d_out(std::vector<float>(out.size(), 5.0f));
    DeviceArray<float> d_dgu(std::vector<float>(dgu.size(), 5.0f));
    cuda().SwiGluForward(d_out.get(), d_gu.get(), N, F);
    cuda().SwiGluBackward(d_dgu.get(), d_dout.get(), d_gu.get(), N, F);
    ExpectSynchronized(cuda());
    EXPECT_LT(RelError(d_out.Download(), out), kCudaFp32Tol);
    EXPECT_LT(RelError(d_dgu.Download(), dgu), kCudaFp32Tol);
  }
}

// ------------------------------------------------------------------------------------------
// Embedding without a position table

TEST_F(CudaOpsTest, EmbeddingWithoutPositionTableMatchesCpu) {
  const int B = 3, T = 65, C = 36, Vp = 64;
  const auto tokens = RandomInts(B * T, 50, 70);
  const auto wte = RandomFloats(Prod(Vp, C), 71);
  const auto dout = RandomFloats(Prod(B * T, C), 72);
  const auto dwte0 = RandomFloats(Prod(Vp, C), 73);
  std::vector<float> out(Prod(B * T, C)), dwte = dwte0;
  Cpu().EmbeddingForward(out.data(), tokens.data(), wte.data(), nullptr, B, T, C);
  Cpu().EmbeddingBackward(dwte.data(), nullptr, dout.data(), tokens.data(), B, T, C);
  DeviceArray<int32_t> d_tokens(tokens);
  DeviceArray<float> d_wte(wte), d_dout(dout), d_dwte(dwte0), d_out(out.size());
  cuda().EmbeddingForward(d_out.get(), d_tokens.get(), d_wte.get(), nullptr, B, T, C);
  cuda().EmbeddingBackward(d_dwte.get(), nullptr, d_dout.get(), d_tokens.get(), B, T, C);
  ExpectSynchronized(cuda());
  EXPECT_TRUE(BitwiseEqual(d_out.Download(), out));
  EXPECT_TRUE(BitwiseEqual(d_dwte.Download(), dwte));  // same order of adds as the CPU
}

// ------------------------------------------------------------------------------------------
// Grouped-query attention

struct GqaShape {
  int B, T, NH, NKV, hs;
  size_t QkvSize() const { return static_cast<size_t>(B) * T * (NH + 2 * NKV) * hs; }
  size_t OutSize() const { return static_cast<size_t>(B) * T * NH * hs; }
  size_t LseSize() const { return static_cast<size_t>(B) * NH * T; }
};

constexpr GqaShape kGqaShapes[] = {
    {2, 7, 4, 2, 8},       // one partial tile
    {2, 128, 8, 2, 64},    // whole tiles, groups of 4
    {1, 70, 6, 3, 33},     // a partial lane chunk, a partial last tile
    {1, 100, 4, 1, 200},   // multi-query; 8 chunks, more than 48 KiB of shared memory
    {1, 1024, 32, 8, 64},  // Llama-like: 32 query heads over 8 kv heads
};

struct GqaCase {
  GqaShape s;
  std::vector<float> qkv, dout, out, lse;  // out, lse: the CPU forward's
};

GqaCase MakeGqaCase(GqaShape s, uint64_t seed) {
  GqaCase c{s, RandomFloats(s.QkvSize(), seed), RandomFloats(s.OutSize(), seed + 1),
            std::vector<float>(s.OutSize()), std::vector<float>(s.LseSize())};
  Cpu().GqaAttentionForward(c.out.data(), c.lse.data(), c.qkv.data(), s.B, s.T, s.NH, s.NKV, s.hs);
  return c;
}

struct GpuGqa {
  std::vector<float> out, lse, dqkv;
};

// The GPU forward, and the GPU backward given the CPU forward's out and lse.
GpuGqa RunGpuGqa(Ops& gpu, const GqaCase& c) {
  const GqaShape s = c.s;
  DeviceArray<float> qkv(c.qkv), dout(c.dout), cpu_out(c.out), cpu_lse(c.lse);
  DeviceArray<float> out(std::vector<float>(c.out.size(), 5.0f));
  DeviceArray<float> lse(std::vector<float>(c.lse.size(), 5.0f));
  DeviceArray<float> dqkv(std::vector<float>(c.qkv.size(), 7.0f));
  gpu.GqaAttentionForward(out.get(), lse.get(), qkv.get(), s.B, s.T, s.NH, s.NKV, s.hs);
  gpu.GqaAttentionBackward(dqkv.get(), dout.get(), qkv.get(), cpu_out.get(), cpu_lse.get(), s.B,
                           s.T, s.NH, s.NKV, s.hs);
  ExpectSynchronized(gpu);
  return {out.Download(), lse.Download(), dqkv.Download()};
}

TEST_F(CudaOpsTest, GqaAttentionMatchesCpu) {
  uint64_t seed = 500;
  for (GqaShape s : kGqaShapes) {
    SCOPED_TRACE(::testing::Message() << "B=" << s.B << " T=" << s.T << " NH=" << s.NH
                                      << " NKV=" << s.NKV << " hs=" << s.hs);
    const GqaCase c = MakeGqaCase(s, seed += 10);
    std::vector<float> want(c.qkv.size(), 7.0f);
    Cpu().GqaAttentionBackward(want.data(), c.dout.data(), c.qkv.data(), c.out.data(), c.lse.data(),
                               s.B, s.T, s.NH, s.NKV, s.hs);
    const GpuGqa got = RunGpuGqa(cuda(), c);
    EXPECT_LT(RelError(got.out, c.out), kCudaFp32Tol);
    EXPECT_LT(RelError(got.lse, c.lse), kCudaFp32Tol);
    EXPECT_LT(RelError(got.dqkv, want), kCudaFp32Tol);
  }
}

TEST_F(CudaOpsTest, GqaAttentionWithAllKvHeadsIsPlainAttentionBitwise) {
  const GqaShape s{2, 100, 4, 4, 32};
  const int C = s.NH * s.hs;
  const GqaCase c = MakeGqaCase(s, 600);
  const GpuGqa gqa = RunGpuGqa(cuda(), c);
  DeviceArray<float> qkv(c.qkv), dout(c.dout), cpu_out(c.out), cpu_lse(c.lse);
  DeviceArray<float> out(c.out.size()), lse(c.lse.size()), dqkv(c.qkv.size());
  cuda().AttentionForward(out.get(), lse.get(), qkv.get(), s.B, s.T, C, s.NH);
  cuda().AttentionBackward(dqkv.get(), dout.get(), qkv.get(), cpu_out.get(), cpu_lse.get(), s.B,
                           s.T, C, s.NH);
  ExpectSynchronized(cuda());
  EXPECT_TRUE(BitwiseEqual(gqa.out, out.Download()));
  EXPECT_TRUE(BitwiseEqual(gqa.lse, lse.Download()));
  EXPECT_TRUE(BitwiseEqual(gqa.dqkv, dqkv.Download()));
}

// Mixed precision: head sizes 64 and 128 run on tensor cores from 16-bit operands
// (attention_tc.cu), fp32 softmax and accumulation. Against the CPU's fp32 attention, stated
// tolerances (relative L2): bf16 out 2e-2, lse 2e-3, dqkv 4e-2; fp16 a quarter of those. The errors
// are printed. The tensor-core path is bitwise reproducible too.
TEST_F(CudaOpsTest, TensorCoreAttentionMatchesCpuWithin16BitTolerance) {
  constexpr GqaShape kShapes[] = {
      {2, 100, 4, 4, 64},      // plain multi-head, a partial last tile
      {2, 128, 8, 2, 64},      // groups of 4
      {1, 1024, 12, 12, 64},   // GPT-2 small
      {1, 1024, 32, 8, 64},    // Llama-like
      {2, 100, 4, 4, 128},     // head size 128: a partial last tile
      {2, 200, 8, 2, 128},     // groups of 4, dk/dv's 32-row query steps past the diagonal
      {1, 1024, 24, 24, 128},  // the 3.8B GPT of bench/offload.sh
  };
  struct Case {
    MatmulPrecision precision;
    const char* name;
    double scale;  // of the bf16 tolerances
  };
  uint64_t seed = 700;
  for (const Case& p :
       {Case{MatmulPrecision::kBf16, "bf16", 1.0}, Case{MatmulPrecision::kFp16, "fp16", 0.25}}) {
    for (GqaShape s : kShapes) {
      SCOPED_TRACE(::testing::Message()
                   << p.name << " B=" << s.B << " T=" << s.T << " NH=" << s.NH << " NKV=" << s.NKV);
      const GqaCase c = MakeGqaCase(s, seed += 10);
      std::vector<float> want(c.qkv.size(), 7.0f);
      Cpu().GqaAttentionBackward(want.data(), c.dout.data(), c.qkv.data(), c.out.data(),
                                 c.lse.data(), s.B, s.T, s.NH, s.NKV, s.hs);
      cuda().SetMatmulPrecision(p.precision);
      const GpuGqa got = RunGpuGqa(cuda(), c);
      const GpuGqa again = RunGpuGqa(cuda(), c);
      cuda().SetMatmulPrecision(MatmulPrecision::kFp32);
      const double e_out = RelError(got.out, c.out), e_lse = RelError(got.lse, c.lse),
                   e_dqkv = RelError(got.dqkv, want);
      std::printf("%s attention B=%d T=%d NH=%d NKV=%d: out %.2e lse %.2e dqkv %.2e\n", p.name, s.B,
                  s.T, s.NH, s.NKV, e_out, e_lse, e_dqkv);
      EXPECT_LT(e_out, 2e-2 * p.scale);
      EXPECT_LT(e_lse, 2e-3 * p.scale);
      EXPECT_LT(e_dqkv, 4e-2 * p.scale);
      EXPECT_TRUE(BitwiseEqual(got.out, again.out));
      EXPECT_TRUE(BitwiseEqual(got.dqkv, again.dqkv));
    }
  }
}

TEST_F(CudaOpsTest, GqaAttentionIsBitwiseDeterministic) {
  const GqaCase c = MakeGqaCase(kGqaShapes[1], 700);
  const GpuGqa a = RunGpuGqa(cuda(), c);
  const GpuGqa b = RunGpuGqa(cuda(), c);
  EXPECT_TRUE(BitwiseEqual(a.out, b.out));
  EXPECT_TRUE(BitwiseEqual(a.lse, b.lse));
  EXPECT_TRUE(BitwiseEqual(a.dqkv, b.dqkv));
}

}  // namespace
}  // namespace spillway::kernels::testing
