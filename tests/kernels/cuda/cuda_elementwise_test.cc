// CUDA backend vs CPU backend for the non-matmul ops: the same fresh random inputs through
// both, outputs compared by relative L2 error. Sizes include odd tails, pointers offset by one
// float (the scalar, non-float4 paths) and realistic GPT-2 shapes, so that index and grid-size
// bugs show. Also checks that the reductions are bitwise reproducible.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

// Element counts with odd tails, and the pointer offsets (in floats) to run them at: 0 keeps
// cudaMalloc's alignment (float4 paths), 1 breaks 16-byte alignment (scalar paths).
const std::vector<size_t> kSizes = {1, 3, 4, 5, 1000, 1001, (size_t{1} << 20) + 3};
const std::vector<size_t> kOffsets = {0, 1};

// Prefixes `pad` values to x, so that x's data starts at element `pad` of the result.
std::vector<float> Padded(const std::vector<float>& x, size_t pad) {
  std::vector<float> out(pad, 7.0f);
  out.insert(out.end(), x.begin(), x.end());
  return out;
}

bool BitwiseEqualDoubles(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

TEST_F(CudaOpsTest, Fill) {
  for (size_t off : kOffsets) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{1001}, (size_t{1} << 20) + 3}) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << off);
      auto host = RandomFloats(n + off + 2, 1);
      std::vector<float> want = host;
      Cpu().Fill(want.data() + off, 3.25f, n);
      DeviceArray<float> d(host);
      cuda().Fill(d.get() + off, 3.25f, n);
      ASSERT_TRUE(cuda().Synchronize().ok());
      EXPECT_TRUE(BitwiseEqual(d.Download(), want));  // also: nothing outside [off, off + n)
    }
  }
}

TEST_F(CudaOpsTest, Add) {
  for (size_t off : kOffsets) {
    for (size_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << off);
      const auto a = Padded(RandomFloats(n, 2), off);
      const auto b = Padded(RandomFloats(n, 3), off);
      std::vector<float> want(n + off, 0.0f);
      Cpu().Add(want.data() + off, a.data() + off, b.data() + off, n);
      DeviceArray<float> da(a), db(b), dout(n + off);
      cuda().Add(dout.get() + off, da.get() + off, db.get() + off, n);
      ASSERT_TRUE(cuda().Synchronize().ok());
      EXPECT_LE(RelError(dout.Download(), want), kCudaFp32Tol);

      // out aliases a, then out aliases b.
      cuda().Add(da.get() + off, da.get() + off, db.get() + off, n);
      ASSERT_TRUE(cuda().Synchronize().ok());
      EXPECT_LE(RelError(da.Download(), Padded({want.begin() + off, want.end()}, off)),
                kCudaFp32Tol);
      DeviceArray<float> da2(a);
      cuda().Add(db.get() + off, da2.get() + off, db.get() + off, n);
      ASSERT_TRUE(cuda().Synchronize().ok());
      EXPECT_LE(RelError(db.Download(), Padded({want.begin() + off, want.end()}, off)),
                kCudaFp32Tol);
    }
  }
}

TEST_F(CudaOpsTest, Accumulate) {
  for (size_t off : kOffsets) {
    for (size_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << off);
      const auto y = Padded(RandomFloats(n, 4), off);
      const auto x = Padded(RandomFloats(n, 5), off);
      std::vector<float> want = y;
      Cpu().Accumulate(want.data() + off, x.data() + off, n);
      DeviceArray<float> dy(y), dx(x);
      cuda().Accumulate(dy.get() + off, dx.get() + off, n);
      ASSERT_TRUE(cuda().Synchronize().ok());
      EXPECT_LE(RelError(dy.Download(), want), kCudaFp32Tol);
    }
  }
}

TEST_F(CudaOpsTest, GeluForwardAndBackward) {
  for (size_t off : kOffsets) {
    for (size_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << off);
      auto raw = RandomFloats(n, 6, 3.0f);
      // Extremes, where exp(-2u) over- or underflows without the clamp.
      const float extremes[] = {-100.0f, -20.0f, -9.0f, 0.0f, 9.0f, 20.0f, 100.0f};
      for (size_t i = 0; i < n && i < 7; ++i) raw[n - 1 - i] = extremes[i];
      const auto inp = Padded(raw, off);
      const auto dout = Padded(RandomFloats(n, 7), off);

      std::vector<float> want_out(n + off, 0.0f), want_dinp(n + off, 0.0f);
      Cpu().GeluForward(want_out.data() + off, inp.data() + off, n);
      Cpu().GeluBackward(want_dinp.data() + off, inp.data() + off, dout.data() + off, n);

      DeviceArray<float> dinp_arr(inp), dout_arr(dout), out(n + off), dinp(n + off);
      cuda().GeluForward(out.get() + off, dinp_arr.get() + off, n);
      cuda().GeluBackward(dinp.get() + off, dinp_arr.get() + off, dout_arr.get() + off, n);
      // In place: dinp aliases dout.
      cuda().GeluBackward(dout_arr.get() + off, dinp_arr.get() + off, dout_arr.get() + off, n);
      ASSERT_TRUE(cuda().Synchronize().ok());
      EXPECT_LE(RelError(out.Download(), want_out), kCudaFp32Tol);
      EXPECT_LE(RelError(dinp.Download(), want_dinp), kCudaFp32Tol);
      auto want_inplace = want_dinp;
      for (size_t i = 0; i < off; ++i) want_inplace[i] = dout[i];
      EXPECT_LE(RelError(dout_arr.Download(), want_inplace), kCudaFp32Tol);
    }
  }
}

struct EmbeddingShape {
  int B, T, C, V, maxT;
};

TEST_F(CudaOpsTest, EmbeddingForward) {
  for (const EmbeddingShape s :
       {EmbeddingShape{2, 5, 13, 7, 9}, EmbeddingShape{4, 256, 768, 50257, 1024},
        EmbeddingShape{3, 33, 1600, 100, 40}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << s.B << " T=" << s.T << " C=" << s.C);
    const size_t BT = static_cast<size_t>(s.B) * s.T;
    const auto tokens = RandomInts(BT, s.V, 8);
    const auto wte = RandomFloats(static_cast<size_t>(s.V) * s.C, 9);
    const auto wpe = RandomFloats(static_cast<size_t>(s.maxT) * s.C, 10);
    std::vector<float> want(BT * s.C);
    Cpu().EmbeddingForward(want.data(), tokens.data(), wte.data(), wpe.data(), s.B, s.T, s.C);
    DeviceArray<int32_t> dtok(tokens);
    DeviceArray<float> dwte(wte), dwpe(wpe), dout(BT * s.C);
    cuda().EmbeddingForward(dout.get(), dtok.get(), dwte.get(), dwpe.get(), s.B, s.T, s.C);
    ASSERT_TRUE(cuda().Synchronize().ok());
    EXPECT_LE(RelError(dout.Download(), want), kCudaFp32Tol);
  }
}

// Runs EmbeddingBackward on both backends from the same non-zero dwte/dwpe and compares.
void CheckEmbeddingBackward(Ops& cuda, const EmbeddingShape& s, const std::vector<int32_t>& tokens,
                            uint64_t seed) {
  const size_t BT = static_cast<size_t>(s.B) * s.T;
  const auto dout = RandomFloats(BT * s.C, seed);
  const auto dwte0 = RandomFloats(static_cast<size_t>(s.V) * s.C, seed + 1);
  const auto dwpe0 = RandomFloats(static_cast<size_t>(s.maxT) * s.C, seed + 2);
  std::vector<float> want_wte = dwte0, want_wpe = dwpe0;
  Cpu().EmbeddingBackward(want_wte.data(), want_wpe.data(), dout.data(), tokens.data(), s.B, s.T,
                          s.C);
  DeviceArray<int32_t> dtok(tokens);
  DeviceArray<float> ddout(dout), dwte(dwte0), dwpe(dwpe0);
  cuda.EmbeddingBackward(dwte.get(), dwpe.get(), ddout.get(), dtok.get(), s.B, s.T, s.C);
  ASSERT_TRUE(cuda.Synchronize().ok());
  EXPECT_LE(RelError(dwte.Download(), want_wte), kCudaFp32Tol);
  EXPECT_LE(RelError(dwpe.Download(), want_wpe), kCudaFp32Tol);
}

TEST_F(CudaOpsTest, EmbeddingBackward) {
  {
    // Few distinct tokens: many repeats of each.
    const EmbeddingShape s{4, 64, 40, 7, 80};
    SCOPED_TRACE("repeats");
    CheckEmbeddingBackward(cuda(), s, RandomInts(s.B * s.T, s.V, 11), 12);
  }
  {
    // One token everywhere: a single row receives every position.
    const EmbeddingShape s{3, 100, 70, 5, 100};
    SCOPED_TRACE("one token");
    CheckEmbeddingBackward(cuda(), s, std::vector<int32_t>(s.B * s.T, 3), 13);
  }
  {
    // C > 1024: more than one channel pass per row; B*T not a multiple of the block size.
    const EmbeddingShape s{2, 77, 1600, 30, 90};
    SCOPED_TRACE("wide");
    CheckEmbeddingBackward(cuda(), s, RandomInts(s.B * s.T, s.V, 14), 15);
  }
  {
    // GPT-2 shape; a frequent token (as EOT in real data) plus random ones.
    const EmbeddingShape s{4, 256, 768, 50257, 1024};
    SCOPED_TRACE("gpt2");
    auto tokens = RandomInts(s.B * s.T, s.V, 16);
    for (size_t i = 0; i < tokens.size(); i += 5) tokens[i] = 50256;
    CheckEmbeddingBackward(cuda(), s, tokens, 17);
  }
}

// LayerNormForwardBf16's outputs are the fp32 op's outputs on the same GPU rounded to nearest
// even, bitwise, on both of LayerNorm's kernel paths (scalar and register).
TEST_F(CudaOpsTest, LayerNormBf16OutputIsTheRoundedFp32Output) {
  for (const auto& [N, C] : {std::pair{37, 75}, std::pair{1024, 768}, std::pair{5, 1600},
                             std::pair{64, 3072}, std::pair{9, 4100}}) {
    SCOPED_TRACE(::testing::Message() << "LayerNorm N=" << N << " C=" << C);
    const auto inp = RandomFloats(static_cast<size_t>(N) * C, 23, 2.0f);
    DeviceArray<float> dinp(inp), dw(RandomFloats(C, 24)), db(RandomFloats(C, 25));
    DeviceArray<float> out(inp.size()), mean(N), rstd(N), mean16(N), rstd16(N);
    DeviceArray<uint16_t> out16(inp.size());
    cuda().LayerNormForward(out.get(), mean.get(), rstd.get(), dinp.get(), dw.get(), db.get(), N,
                            C);
    cuda().LayerNormForwardBf16(out16.get(), mean16.get(), rstd16.get(), dinp.get(), dw.get(),
                                db.get(), N, C);
    ASSERT_TRUE(cuda().Synchronize().ok());
    EXPECT_EQ(out16.Download(), Bf16Bits(out.Download()));
    EXPECT_TRUE(BitwiseEqual(mean16.Download(), mean.Download()));
    EXPECT_TRUE(BitwiseEqual(rstd16.Download(), rstd.Download()));
  }
}

TEST_F(CudaOpsTest, LayerNormForward) {
  // C % 4 != 0 (the scalar kernel); 768, 1600 and 3072 held in registers (8, 16 and 32 quads a
  // lane); 4100 (scalar: too long for registers).
  for (const auto& [N, C] : {std::pair{37, 75}, std::pair{1024, 768}, std::pair{5, 1600},
                             std::pair{64, 3072}, std::pair{9, 4100}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C);
    auto inp = RandomFloats(static_cast<size_t>(N) * C, 20, 2.0f);
    for (float& x : inp) x += 0.5f;  // a non-zero mean
    const auto w = RandomFloats(C, 21);
    const auto b = RandomFloats(C, 22);
    std::vector<float> out(static_cast<size_t>(N) * C), mean(N), rstd(N);
    Cpu().LayerNormForward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                           C);
    DeviceArray<float> dinp(inp), dw(w), db(b), dout(out.size()), dmean(N), drstd(N);
    cuda().LayerNormForward(dout.get(), dmean.get(), drstd.get(), dinp.get(), dw.get(), db.get(), N,
                            C);
    ASSERT_TRUE(cuda().Synchronize().ok());
    EXPECT_LE(RelError(dout.Download(), out), kCudaFp32Tol);
    EXPECT_LE(RelError(dmean.Download(), mean), kCudaFp32Tol);
    EXPECT_LE(RelError(drstd.Download(), rstd), kCudaFp32Tol);
  }
}

struct LayerNormBackwardInputs {
  std::vector<float> dout, inp, w, mean, rstd, dinp0, dw0, db0;
};

// Random inputs, mean/rstd from the CPU forward, non-zero initial gradients ("+=").
LayerNormBackwardInputs MakeLayerNormBackwardInputs(int N, int C, uint64_t seed) {
  LayerNormBackwardInputs in;
  in.inp = RandomFloats(static_cast<size_t>(N) * C, seed, 2.0f);
  in.w = RandomFloats(C, seed + 1);
  const auto b = RandomFloats(C, seed + 2);
  in.dout = RandomFloats(static_cast<size_t>(N) * C, seed + 3);
  in.mean.resize(N);
  in.rstd.resize(N);
  std::vector<float> out(in.inp.size());
  Cpu().LayerNormForward(out.data(), in.mean.data(), in.rstd.data(), in.inp.data(), in.w.data(),
                         b.data(), N, C);
  in.dinp0 = RandomFloats(in.inp.size(), seed + 4);
  in.dw0 = RandomFloats(C, seed + 5);
  in.db0 = RandomFloats(C, seed + 6);
  return in;
}

TEST_F(CudaOpsTest, LayerNormBackward) {
  for (const auto& [N, C] :
       {std::pair{37, 75}, std::pair{1024, 768}, std::pair{5, 1600}, std::pair{300, 8},
        std::pair{64, 3072},       // dinp: 6 quads a thread
        std::pair{4100, 1600}}) {  // the last: parameter sums over several row chunks
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C);
    const auto in = MakeLayerNormBackwardInputs(N, C, 30);
    std::vector<float> dinp = in.dinp0, dw = in.dw0, db = in.db0;
    Cpu().LayerNormBackward(dinp.data(), dw.data(), db.data(), in.dout.data(), in.inp.data(),
                            in.w.data(), in.mean.data(), in.rstd.data(), N, C);
    DeviceArray<float> ddinp(in.dinp0), ddw(in.dw0), ddb(in.db0), ddout(in.dout), dinp_in(in.inp),
        dweight(in.w), dmean(in.mean), drstd(in.rstd);
    cuda().LayerNormBackward(ddinp.get(), ddw.get(), ddb.get(), ddout.get(), dinp_in.get(),
                             dweight.get(), dmean.get(), drstd.get(), N, C);
    ASSERT_TRUE(cuda().Synchronize().ok());
    EXPECT_LE(RelError(ddinp.Download(), dinp), kCudaFp32Tol);
    EXPECT_LE(RelError(ddw.Download(), dw), kCudaFp32Tol);
    EXPECT_LE(RelError(ddb.Download(), db), kCudaFp32Tol);
  }
}

// LayerNormBackwardBf16 (dout as bf16) is LayerNormBackward on the widened dout on the same GPU:
// dinp bitwise, on every kernel path (as above); dweight and dbias to fp32 rounding, as the
// separate parameter kernel (C = 3072) adds the same products in another order (a block sums the
// 16 channels of a 32-byte bf16 sector rather than 8). With dinp16 and dinp_sums (in the fused
// pass where C <= 2048 and C % 4 == 0, else by the bias-gradient kernel after it): dinp as without
// them, bitwise (dweight and dbias to fp32 rounding: the fused pass may run another number of
// blocks); dinp16 = round(dinp), bitwise; dinp_sums = dinp's column sums (fp32 tolerance against
// the CPU's sums of the GPU's dinp).
TEST_F(CudaOpsTest, LayerNormBackwardFromBf16GradIsTheWidenedGrad) {
  for (const auto& [N, C] : {std::pair{37, 75}, std::pair{1024, 768}, std::pair{5, 1600},
                             std::pair{64, 3072}, std::pair{4100, 1600}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C);
    const auto in = MakeLayerNormBackwardInputs(N, C, 31);
    const std::vector<uint16_t> dout16 = Bf16Bits(in.dout);
    DeviceArray<float> inp(in.inp), w(in.w), mean(in.mean), rstd(in.rstd);
    DeviceArray<float> dout(Bf16Values(dout16)), dinp(in.dinp0), dw(in.dw0), db(in.db0);
    DeviceArray<uint16_t> d_dout16(dout16);
    DeviceArray<float> dinp16(in.dinp0), dw16(in.dw0), db16(in.db0);
    cuda().LayerNormBackward(dinp.get(), dw.get(), db.get(), dout.get(), inp.get(), w.get(),
                             mean.get(), rstd.get(), N, C);
    cuda().LayerNormBackwardBf16(dinp16.get(), dw16.get(), db16.get(), d_dout16.get(), inp.get(),
                                 w.get(), mean.get(), rstd.get(), N, C, nullptr, nullptr);
    DeviceArray<float> dinp_c(in.dinp0), dw_c(in.dw0), db_c(in.db0), sums(static_cast<size_t>(C));
    DeviceArray<uint16_t> copy(static_cast<size_t>(N) * C);
    cuda().LayerNormBackwardBf16(dinp_c.get(), dw_c.get(), db_c.get(), d_dout16.get(), inp.get(),
                                 w.get(), mean.get(), rstd.get(), N, C, copy.get(), sums.get());
    ASSERT_TRUE(cuda().Synchronize().ok());
    const std::vector<float> got = dinp16.Download();
    EXPECT_TRUE(BitwiseEqual(got, dinp.Download()));
    EXPECT_LE(RelError(dw16.Download(), dw.Download()), kCudaFp32Tol);
    EXPECT_LE(RelError(db16.Download(), db.Download()), kCudaFp32Tol);
    EXPECT_TRUE(BitwiseEqual(dinp_c.Download(), got));
    EXPECT_LE(RelError(dw_c.Download(), dw16.Download()), kCudaFp32Tol);
    EXPECT_LE(RelError(db_c.Download(), db16.Download()), kCudaFp32Tol);
    EXPECT_EQ(copy.Download(), Bf16Bits(got));
    EXPECT_LE(RelError(sums.Download(), ColumnSums(got, N, C)), kCudaFp32Tol);
  }
}

struct CrossEntropyShape {
  int N, V, Vp;
};

TEST_F(CudaOpsTest, CrossEntropy) {
  for (const CrossEntropyShape s :
       {CrossEntropyShape{7, 10, 16}, CrossEntropyShape{9, 13, 13}, CrossEntropyShape{5, 1, 3},
        CrossEntropyShape{33, 1000, 1001}, CrossEntropyShape{4 * 256, 50257, 50304},
        CrossEntropyShape{37, 60001, 60008}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " V=" << s.V << " Vp=" << s.Vp);
    const size_t size = static_cast<size_t>(s.N) * s.Vp;
    auto logits = RandomFloats(size, 40, 3.0f);
    for (int n = 0; n < s.N; ++n) {  // padding columns hold garbage, which must not be read
      for (int i = s.V; i < s.Vp; ++i) logits[static_cast<size_t>(n) * s.Vp + i] = NAN;
    }
    auto targets = RandomInts(s.N, s.V, 41);
    std::vector<int> ignored;
    for (int n = 1; n < s.N; n += 3) {
      targets[n] = -1;
      ignored.push_back(n);
    }
    targets[0] = s.V - 1;  // the last real column (row 0 is never ignored)

    // Loss only: logits left alone.
    std::vector<float> want_losses(s.N, 9.0f);
    {
      std::vector<float> x = logits;
      Cpu().CrossEntropy(want_losses.data(), x.data(), targets.data(), s.N, s.V, s.Vp, 0.0f);
    }
    DeviceArray<int32_t> dtargets(targets);
    {
      DeviceArray<float> dlogits(logits), dlosses(std::vector<float>(s.N, 9.0f));
      cuda().CrossEntropy(dlosses.get(), dlogits.get(), dtargets.get(), s.N, s.V, s.Vp, 0.0f);
      ASSERT_TRUE(cuda().Synchronize().ok());
      EXPECT_LE(RelError(dlosses.Download(), want_losses), kCudaFp32Tol);
      EXPECT_TRUE(BitwiseEqual(dlogits.Download(), logits));
    }

    // With the gradient, in place.
    const float scale = 1.0f / s.N;
    std::vector<float> want_grad = logits, want_losses2(s.N, 9.0f);
    Cpu().CrossEntropy(want_losses2.data(), want_grad.data(), targets.data(), s.N, s.V, s.Vp,
                       scale);
    DeviceArray<float> dlogits(logits), dlosses(std::vector<float>(s.N, 9.0f));
    cuda().CrossEntropy(dlosses.get(), dlogits.get(), dtargets.get(), s.N, s.V, s.Vp, scale);
    ASSERT_TRUE(cuda().Synchronize().ok());
    const auto losses = dlosses.Download();
    const auto grad = dlogits.Download();
    EXPECT_LE(RelError(losses, want_losses2), kCudaFp32Tol);
    EXPECT_LE(RelError(grad, want_grad), kCudaFp32Tol);
    size_t bad_padding = 0, bad_ignored = 0;
    for (int n = 0; n < s.N; ++n) {
      for (int i = s.V; i < s.Vp; ++i) bad_padding += grad[static_cast<size_t>(n) * s.Vp + i] != 0;
    }
    for (int n : ignored) {
      EXPECT_EQ(losses[n], 0.0f);
      for (int i = 0; i < s.Vp; ++i) bad_ignored += grad[static_cast<size_t>(n) * s.Vp + i] != 0;
    }
    EXPECT_EQ(bad_padding, 0u);
    EXPECT_EQ(bad_ignored, 0u);
  }
}

// CrossEntropyBf16 is CrossEntropy on the widened logits on the same GPU: the losses bitwise, the
// gradient that one rounded to bf16, bitwise, on the scalar path (Vp % 4 != 0) and the octet
// kernel's (bf16 / fp32 rows staged two / one at a time at 50304 columns, one / none at 60008).
TEST_F(CudaOpsTest, CrossEntropyOnBf16LogitsIsCrossEntropyOnTheWidenedLogits) {
  for (const CrossEntropyShape s :
       {CrossEntropyShape{33, 1000, 1001}, CrossEntropyShape{4 * 256, 50257, 50304},
        CrossEntropyShape{37, 60001, 60008}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " V=" << s.V << " Vp=" << s.Vp);
    const auto bits = Bf16Bits(RandomFloats(static_cast<size_t>(s.N) * s.Vp, 42, 3.0f));
    auto targets = RandomInts(s.N, s.V, 43);
    for (int n = 1; n < s.N; n += 3) targets[n] = -1;
    DeviceArray<int32_t> dtargets(targets);
    DeviceArray<float> wide(Bf16Values(bits)), losses(s.N), losses16(s.N);
    DeviceArray<uint16_t> logits16(bits);
    const float scale = 1.0f / s.N;
    cuda().CrossEntropy(losses.get(), wide.get(), dtargets.get(), s.N, s.V, s.Vp, scale);
    cuda().CrossEntropyBf16(losses16.get(), logits16.get(), dtargets.get(), s.N, s.V, s.Vp, scale);
    ASSERT_TRUE(cuda().Synchronize().ok());
    EXPECT_TRUE(BitwiseEqual(losses16.Download(), losses.Download()));
    EXPECT_EQ(logits16.Download(), Bf16Bits(wide.Download()));
  }
}

TEST_F(CudaOpsTest, SumSquares) {
  for (size_t off : kOffsets) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{3000017}}) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << off);
      const auto x = Padded(RandomFloats(n, 50, 2.0f), off);
      double want = 0.0;
      Cpu().AddSumSquares(&want, x.data() + off, n);
      DeviceArray<float> dx(x);
      DeviceArray<double> got(std::vector<double>{0.0});
      cuda().AddSumSquares(got.get(), dx.get() + off, n);
      ASSERT_TRUE(cuda().Synchronize().ok());
      const double g = got.Download()[0];
      if (n == 0) {
        EXPECT_EQ(g, 0.0);
      } else {
        EXPECT_LE(std::abs(g - want) / want, 1e-12) << g << " vs " << want;
      }
    }
  }
  // Accumulates: a second call (and an empty one) adds to the first's result.
  const auto x = RandomFloats(100, 51);
  double want = 0.0;
  Cpu().AddSumSquares(&want, x.data(), 100);
  DeviceArray<float> dx(x);
  DeviceArray<double> got(std::vector<double>{1.0});
  cuda().AddSumSquares(got.get(), dx.get(), 100);
  cuda().AddSumSquares(got.get(), dx.get(), 0);
  ASSERT_TRUE(cuda().Synchronize().ok());
  EXPECT_NEAR(got.Download()[0], 1.0 + want, 1e-12 * want);
}

// AddSumSquaresParts is AddSumSquares once per part, bitwise: over more parts than one launch
// takes (kSumPartsMax), in two allocations, with empty parts, gaps, unaligned starts and a part
// of more blocks than the grid cap.
TEST_F(CudaOpsTest, SumSquaresPartsEqualOneCallPerPart) {
  std::vector<size_t> ranges;
  size_t at = 0;
  for (size_t k = 0; k < 170; ++k) {
    const size_t n = k % 7 == 3 ? 0 : (k * 7919) % 20000 + 1;
    ranges.push_back(at);
    ranges.push_back(at + n);
    at += n + k % 5;  // gaps of 0 to 4 floats between parts
  }
  ranges.push_back(at);
  ranges.push_back(at + 5000011);
  at += 5000011;
  DeviceArray<float> x(RandomFloats(at, 52, 2.0f)), y(RandomFloats(3001, 53));
  DeviceArray<double> want(std::vector<double>{0.25}), got(std::vector<double>{0.25});
  std::vector<std::span<const float>> parts;
  for (size_t k = 0; k < ranges.size(); k += 2) {
    parts.emplace_back(x.get() + ranges[k], ranges[k + 1] - ranges[k]);
    if (k % 40 == 20) parts.emplace_back(y.get() + k % 3, 3001 - k % 3);
  }
  for (const std::span<const float> part : parts) {
    cuda().AddSumSquares(want.get(), part.data(), part.size());
  }
  cuda().AddSumSquaresParts(got.get(), parts);
  ASSERT_TRUE(cuda().Synchronize().ok());
  const double w = want.Download()[0], g = got.Download()[0];
  EXPECT_TRUE(BitwiseEqualDoubles(g, w)) << g << " vs " << w;
}

// AddInOrder adds the doubles one after another, as the CPU does: bitwise.
TEST_F(CudaOpsTest, AddInOrder) {
  const std::vector<double> values = {1e-3, 2.5, 1e17, -1e17, 3.0e-9, 7.0};
  double want = 0.125;
  Cpu().AddInOrder(&want, values.data(), values.size());
  DeviceArray<double> dvalues(values);
  DeviceArray<double> got(std::vector<double>{0.125});
  cuda().AddInOrder(got.get(), dvalues.get(), values.size());
  cuda().AddInOrder(got.get(), dvalues.get(), 0);
  ASSERT_TRUE(cuda().Synchronize().ok());
  const double g = got.Download()[0];
  EXPECT_EQ(std::memcmp(&g, &want, sizeof(double)), 0) << g << " vs " << want;
}

// AddMean: float(sum / divisor) added to the device double, as the CPU's up to the order of the
// double sum (which float rounding then hides almost always); nothing for divisor 0.
TEST_F(CudaOpsTest, AddMean) {
  for (size_t n : {size_t{1}, size_t{1000}, size_t{16384}, size_t{3000017}}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const auto x = RandomFloats(n, 52, 4.0f);
    double want = 0.5;
    Cpu().AddMean(&want, x.data(), n, n);
    DeviceArray<float> dx(x);
    DeviceArray<double> got(std::vector<double>{0.5});
    cuda().AddMean(got.get(), dx.get(), n, n);
    cuda().AddMean(got.get(), dx.get(), n, 0);
    ASSERT_TRUE(cuda().Synchronize().ok());
    EXPECT_NEAR(got.Download()[0], want, 1e-6 * std::abs(want - 0.5) + 1e-12);
  }
}

// CUDA AdamW is bitwise equal to the CPU's, aligned (float4) and unaligned, with and without
// weight decay and gradient scaling.
TEST_F(CudaOpsTest, AdamWSeveralSteps) {
  for (size_t off : kOffsets) {
    for (size_t n : {size_t{5}, size_t{1000003}}) {
      for (const auto& [wd, grad_scale] : {std::pair{0.1f, 0.5f}, std::pair{0.0f, 1.0f}}) {
        SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << off << " wd=" << wd);
        AdamWParams p;
        p.lr = 1e-3f;
        p.weight_decay = wd;
        p.grad_scale = grad_scale;
        std::vector<float> param = Padded(RandomFloats(n, 60), off);
        std::vector<float> m(n + off, 0.0f), v(n + off, 0.0f);
        DeviceArray<float> dparam(param), dm(m), dv(v);
        for (int step = 1; step <= 5; ++step) {
          p.step = step;
          const auto grad = Padded(RandomFloats(n, 61 + step), off);
          Cpu().AdamW(param.data() + off, grad.data() + off, m.data() + off, v.data() + off, n, p);
          DeviceArray<float> dgrad(grad);
          cuda().AdamW(dparam.get() + off, dgrad.get() + off, dm.get() + off, dv.get() + off, n, p);
          ASSERT_TRUE(cuda().Synchronize().ok());
          SCOPED_TRACE(::testing::Message() << "step=" << step);
          // The same rounded operations in the same order: bitwise equal (kernels/cuda/adamw.cu).
          EXPECT_TRUE(BitwiseEqual(dparam.Download(), param));
          EXPECT_TRUE(BitwiseEqual(dm.Download(), m));
          EXPECT_TRUE(BitwiseEqual(dv.Download(), v));
        }
      }
    }
  }
}

// AdamWParts on the GPU (parts packed kAdamWPartsMax per launch) is the CPU's AdamWParts,
// bitwise, bf16 copies of the updated parameters included: 40 parts with gaps, empty and
// odd-sized ones, float4 and unaligned starts.
TEST_F(CudaOpsTest, AdamWPartsMatchesCpu) {
  std::vector<size_t> ranges;
  std::vector<float> decays;
  size_t at = 3;
  for (int k = 0; k < 40; ++k) {
    const size_t len = k % 7 == 3 ? 0 : static_cast<size_t>(1 + (k * 7919) % 20000);
    ranges.push_back(at);
    ranges.push_back(at + len);
    decays.push_back(k % 3 == 0 ? 0.0f : 0.1f);
    at += len + static_cast<size_t>(k % 5);
  }
  const size_t n = at;
  AdamWParams p;
  p.lr = 1e-3f;
  p.grad_scale = 0.5f;
  std::vector<float> param = RandomFloats(n, 80), m(n, 0.0f), v(n, 0.0f);
  std::vector<uint16_t> copy(n, 0x7fc1);  // the gaps keep it
  DeviceArray<float> dparam(param), dm(m), dv(v);
  DeviceArray<uint16_t> dcopy(copy);
  for (int step = 1; step <= 3; ++step) {
    p.step = step;
    const auto grad = RandomFloats(n, 81 + step);
    uint16_t* with_copy = step == 2 ? nullptr : copy.data();  // step 2 without
    Cpu().AdamWParts(param.data(), with_copy, grad.data(), m.data(), v.data(), ranges.data(),
                     decays.data(), decays.size(), p);
    DeviceArray<float> dgrad(grad);
    cuda().AdamWParts(dparam.get(), step == 2 ? nullptr : dcopy.get(), dgrad.get(), dm.get(),
                      dv.get(), ranges.data(), decays.data(), decays.size(), p);
    ASSERT_TRUE(cuda().Synchronize().ok());
    SCOPED_TRACE(::testing::Message() << "step=" << step);
    EXPECT_EQ(dcopy.Download(), copy);
    EXPECT_TRUE(BitwiseEqual(dparam.Download(), param));
    EXPECT_TRUE(BitwiseEqual(dm.Download(), m));
    EXPECT_TRUE(BitwiseEqual(dv.Download(), v));
  }
}

// The reductions run twice on the same inputs give bitwise-identical results.
TEST_F(CudaOpsTest, ReductionsAreBitwiseReproducible) {
  {
    const EmbeddingShape s{4, 256, 768, 50257, 1024};
    auto tokens = RandomInts(s.B * s.T, 100, 70);  // many repeats
    const auto dout = RandomFloats(static_cast<size_t>(s.B) * s.T * s.C, 71);
    const auto dwte0 = RandomFloats(static_cast<size_t>(s.V) * s.C, 72);
    const auto dwpe0 = RandomFloats(static_cast<size_t>(s.maxT) * s.C, 73);
    DeviceArray<int32_t> dtok(tokens);
    DeviceArray<float> ddout(dout);
    std::vector<float> results[2][2];
    for (int run = 0; run < 2; ++run) {
      DeviceArray<float> dwte(dwte0), dwpe(dwpe0);
      cuda().EmbeddingBackward(dwte.get(), dwpe.get(), ddout.get(), dtok.get(), s.B, s.T, s.C);
      ASSERT_TRUE(cuda().Synchronize().ok());
      results[run][0] = dwte.Download();
      results[run][1] = dwpe.Download();
    }
    EXPECT_TRUE(BitwiseEqual(results[0][0], results[1][0])) << "EmbeddingBackward dwte";
    EXPECT_TRUE(BitwiseEqual(results[0][1], results[1][1])) << "EmbeddingBackward dwpe";
  }
  {
    const int N = 4096, C = 768;
    const auto in = MakeLayerNormBackwardInputs(N, C, 80);
    DeviceArray<float> ddout(in.dout), dinp_in(in.inp), dweight(in.w), dmean(in.mean),
        drstd(in.rstd);
    std::vector<float> results[2][3];
    for (int run = 0; run < 2; ++run) {
      DeviceArray<float> ddinp(in.dinp0), ddw(in.dw0), ddb(in.db0);
      cuda().LayerNormBackward(ddinp.get(), ddw.get(), ddb.get(), ddout.get(), dinp_in.get(),
                               dweight.get(), dmean.get(), drstd.get(), N, C);
      ASSERT_TRUE(cuda().Synchronize().ok());
      results[run][0] = ddinp.Download();
      results[run][1] = ddw.Download();
      results[run][2] = ddb.Download();
    }
    EXPECT_TRUE(BitwiseEqual(results[0][0], results[1][0])) << "LayerNormBackward dinp";
    EXPECT_TRUE(BitwiseEqual(results[0][1], results[1][1])) << "LayerNormBackward dweight";
    EXPECT_TRUE(BitwiseEqual(results[0][2], results[1][2])) << "LayerNormBackward dbias";
  }
  {
    const size_t n = 3000017;
    DeviceArray<float> dx(RandomFloats(n, 90));
    DeviceArray<double> da(std::vector<double>{0.0}), db(std::vector<double>{0.0});
    cuda().AddSumSquares(da.get(), dx.get(), n);
    cuda().AddSumSquares(db.get(), dx.get(), n);
    ASSERT_TRUE(cuda().Synchronize().ok());
    const double a = da.Download()[0], b = db.Download()[0];
    EXPECT_TRUE(BitwiseEqualDoubles(a, b)) << a << " vs " << b;
  }
}

}  // namespace
}  // namespace spillway::kernels::testing
