// The CPU backend's bf16 matmul inputs (kernels/ops.h) against their fp32 namesakes: at kBf16 a
// matmul rounds its input to bf16 anyway, so keeping the input rounded changes nothing, bitwise.
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

// Sets the CPU backend's matmul precision for one test, then back to fp32.
class PrecisionScope {
 public:
  explicit PrecisionScope(MatmulPrecision p) { Cpu().SetMatmulPrecision(p); }
  ~PrecisionScope() { Cpu().SetMatmulPrecision(MatmulPrecision::kFp32); }
};

struct Shape {
  int N, C, OC;
};
constexpr Shape kShapes[] = {{37, 70, 45}, {64, 96, 32}};

TEST(Bf16InputsTest, LayerNormForwardWritesTheRoundedOutput) {
  for (const auto& [N, C] : {std::pair{37, 75}, std::pair{16, 768}}) {
    const auto inp = RandomFloats(static_cast<size_t>(N) * C, 1, 2.0f);
    const auto w = RandomFloats(C, 2);
    const auto b = RandomFloats(C, 3);
    std::vector<float> out(inp.size()), mean(N), rstd(N), mean16(N), rstd16(N);
    std::vector<uint16_t> out16(inp.size());
    Cpu().LayerNormForward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                           C);
    Cpu().LayerNormForwardBf16(out16.data(), mean16.data(), rstd16.data(), inp.data(), w.data(),
                               b.data(), N, C);
    EXPECT_EQ(out16, Bf16Bits(out)) << "N=" << N << " C=" << C;
    EXPECT_TRUE(BitwiseEqual(mean16, mean));
    EXPECT_TRUE(BitwiseEqual(rstd16, rstd));
  }
}

// The MLP's fused ops: MatmulGeluForwardToBf16's pre is MatmulForwardToBf16's output and its out
// the GELU of the same fp32 sums (MatmulForwardBf16 with the rounded bias), rounded;
// MatmulGeluBackwardBf16 is MatmulBackward on the widened h with its dinp through GeluBackward on
// the widened pre, rounded. Bitwise.
TEST(Bf16InputsTest, MatmulGeluOpsAreTheMatmulAndGeluOnTheFp32Sums) {
  const PrecisionScope bf16(MatmulPrecision::kBf16);
  const Shape s = kShapes[0];
  const size_t n = static_cast<size_t>(s.N) * s.OC;
  const auto bits = Bf16Bits(RandomFloats(static_cast<size_t>(s.N) * s.C, 60));
  const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 61);
  const auto bias = RandomFloats(s.OC, 62);
  std::vector<uint16_t> out16(n), pre16(n), want_pre(n);
  Cpu().MatmulGeluForwardToBf16(out16.data(), pre16.data(), bits.data(), w.data(), bias.data(), s.N,
                                s.C, s.OC);
  Cpu().MatmulForwardToBf16(want_pre.data(), bits.data(), w.data(), bias.data(), s.N, s.C, s.OC);
  EXPECT_EQ(pre16, want_pre);
  std::vector<float> sums(n), gelu(n);
  Cpu().MatmulForwardBf16(sums.data(), bits.data(), w.data(), Bf16Values(Bf16Bits(bias)).data(),
                          nullptr, s.N, s.C, s.OC);
  Cpu().GeluForward(gelu.data(), sums.data(), n);
  EXPECT_EQ(out16, Bf16Bits(gelu));

  // The down-projection: h = out16 (N, OC) back to C channels.
  const auto dout = RandomFloats(static_cast<size_t>(s.N) * s.C, 63);
  const auto w2 = RandomFloats(w.size(), 64);
  const auto dw0 = RandomFloats(w.size(), 65);
  const auto db0 = RandomFloats(s.C, 66);
  std::vector<uint16_t> dpre16(n);
  std::vector<float> dw = dw0, db = db0;
  Cpu().MatmulGeluBackwardBf16(dpre16.data(), dw.data(), db.data(), dout.data(), out16.data(),
                               pre16.data(), w2.data(), s.N, s.OC, s.C);
  std::vector<float> dpre(n), want_dw = dw0, want_db = db0;
  Cpu().MatmulBackward(dpre.data(), want_dw.data(), want_db.data(), dout.data(),
                       Bf16Values(out16).data(), w2.data(), s.N, s.OC, s.C);
  Cpu().GeluBackward(dpre.data(), Bf16Values(pre16).data(), dpre.data(), n);
  EXPECT_EQ(dpre16, Bf16Bits(dpre));
  EXPECT_TRUE(BitwiseEqual(dw, want_dw));
  EXPECT_TRUE(BitwiseEqual(db, want_db));
}

// LayerNormBackwardBf16 (dout as bf16) is LayerNormBackward on the widened dout, bitwise; dinp,
// dweight and dbias accumulate. With dinp16 and dinp_sums it also writes round(dinp) and dinp's
// column sums, the rest unchanged.
TEST(Bf16InputsTest, LayerNormBackwardFromBf16GradIsTheWidenedGrad) {
  const int N = 37, C = 75;
  const auto dout16 = Bf16Bits(RandomFloats(static_cast<size_t>(N) * C, 45));
  const auto inp = RandomFloats(dout16.size(), 46, 2.0f);
  const auto w = RandomFloats(C, 47);
  std::vector<float> out(inp.size()), mean(N), rstd(N);
  Cpu().LayerNormForward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), w.data(), N,
                         C);
  const auto dinp0 = RandomFloats(inp.size(), 48);
  const auto dw0 = RandomFloats(C, 49);
  const auto db0 = RandomFloats(C, 50);
  std::vector<float> dinp = dinp0, dw = dw0, db = db0;
  Cpu().LayerNormBackward(dinp.data(), dw.data(), db.data(), Bf16Values(dout16).data(), inp.data(),
                          w.data(), mean.data(), rstd.data(), N, C);
  std::vector<float> dinp16 = dinp0, dw16 = dw0, db16 = db0;
  Cpu().LayerNormBackwardBf16(dinp16.data(), dw16.data(), db16.data(), dout16.data(), inp.data(),
                              w.data(), mean.data(), rstd.data(), N, C, nullptr, nullptr);
  EXPECT_TRUE(BitwiseEqual(dinp16, dinp));
  EXPECT_TRUE(BitwiseEqual(dw16, dw));
  EXPECT_TRUE(BitwiseEqual(db16, db));

  std::vector<float> dinp_c = dinp0, dw_c = dw0, db_c = db0, sums(C, NAN);
  std::vector<uint16_t> copy(dinp.size());
  Cpu().LayerNormBackwardBf16(dinp_c.data(), dw_c.data(), db_c.data(), dout16.data(), inp.data(),
                              w.data(), mean.data(), rstd.data(), N, C, copy.data(), sums.data());
  EXPECT_TRUE(BitwiseEqual(dinp_c, dinp));
  EXPECT_TRUE(BitwiseEqual(dw_c, dw));
  EXPECT_TRUE(BitwiseEqual(db_c, db));
  EXPECT_EQ(copy, Bf16Bits(dinp));
  EXPECT_TRUE(BitwiseEqual(sums, ColumnSums(dinp, N, C)));
}

// The matmul backwards given an fp32 dout with its copies (MatmulDout: round(dout) and its column
// sums, as LayerNormBackwardBf16 writes them) give what they give from dout alone, bitwise.
TEST(Bf16InputsTest, MatmulBackwardsFromGradCopiesAreThoseFromTheGrad) {
  const PrecisionScope bf16(MatmulPrecision::kBf16);
  const Shape s = kShapes[1];
  const auto dout = RandomFloats(static_cast<size_t>(s.N) * s.OC, 80);
  const auto dout16 = Bf16Bits(dout);
  const auto sums = ColumnSums(dout, s.N, s.OC);
  const MatmulDout copied{dout.data(), dout16.data(), sums.data()};
  const auto inp16 = Bf16Bits(RandomFloats(static_cast<size_t>(s.N) * s.C, 81));
  const auto pre16 = Bf16Bits(RandomFloats(inp16.size(), 82));
  const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 83);
  const auto dw0 = RandomFloats(w.size(), 84);
  const auto db0 = RandomFloats(s.OC, 85);
  for (const bool gelu : {false, true}) {
    SCOPED_TRACE(gelu ? "MatmulGeluBackwardBf16" : "MatmulBackwardBf16");
    std::vector<uint16_t> want_dinp(inp16.size()), got_dinp(inp16.size());
    std::vector<float> want_dw = dw0, want_db = db0, got_dw = dw0, got_db = db0;
    for (const bool with_copies : {false, true}) {
      const MatmulDout d = with_copies ? copied : MatmulDout(dout.data());
      uint16_t* dinp = with_copies ? got_dinp.data() : want_dinp.data();
      float* dw = with_copies ? got_dw.data() : want_dw.data();
      float* db = with_copies ? got_db.data() : want_db.data();
      if (gelu) {
        Cpu().MatmulGeluBackwardBf16(dinp, dw, db, d, inp16.data(), pre16.data(), w.data(), s.N,
                                     s.C, s.OC);
      } else {
        Cpu().MatmulBackwardBf16(dinp, dw, db, d, inp16.data(), w.data(), s.N, s.C, s.OC);
      }
    }
    EXPECT_EQ(got_dinp, want_dinp);
    EXPECT_TRUE(BitwiseEqual(got_dw, want_dw));
    EXPECT_TRUE(BitwiseEqual(got_db, want_db));
  }
}

// MatmulBackwardBf16Grad (dout as bf16) is MatmulBackwardBf16 on the widened dout, bitwise.
TEST(Bf16InputsTest, MatmulBackwardFromBf16GradIsTheWidenedGrad) {
  const PrecisionScope bf16(MatmulPrecision::kBf16);
  const Shape s = kShapes[1];
  const auto dout16 = Bf16Bits(RandomFloats(static_cast<size_t>(s.N) * s.OC, 40));
  const auto inp16 = Bf16Bits(RandomFloats(static_cast<size_t>(s.N) * s.C, 41));
  const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 42);
  const auto dw0 = RandomFloats(w.size(), 43);
  const auto db0 = RandomFloats(s.OC, 44);
  std::vector<uint16_t> dinp(static_cast<size_t>(s.N) * s.C);
  std::vector<float> dw = dw0, db = db0;
  Cpu().MatmulBackwardBf16(dinp.data(), dw.data(), db.data(), Bf16Values(dout16).data(),
                           inp16.data(), w.data(), s.N, s.C, s.OC);
  std::vector<uint16_t> dinp16(dinp.size());
  std::vector<float> dw16 = dw0, db16 = db0;
  Cpu().MatmulBackwardBf16Grad(dinp16.data(), dw16.data(), db16.data(), dout16.data(), inp16.data(),
                               w.data(), s.N, s.C, s.OC);
  EXPECT_EQ(dinp16, dinp);
  EXPECT_TRUE(BitwiseEqual(dw16, dw));
  EXPECT_TRUE(BitwiseEqual(db16, db));
}

TEST(Bf16InputsTest, MatmulForwardFromRoundedInputEqualsBf16Matmul) {
  const PrecisionScope bf16(MatmulPrecision::kBf16);
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    const auto inp = RandomFloats(static_cast<size_t>(s.N) * s.C, 5);
    const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 6);
    const auto bias = RandomFloats(s.OC, 7);
    const auto residual = RandomFloats(static_cast<size_t>(s.N) * s.OC, 8);
    std::vector<float> want(residual.size()), got(residual.size(), 9.0f);
    Cpu().MatmulForward(want.data(), inp.data(), w.data(), bias.data(), residual.data(), s.N, s.C,
                        s.OC);
    Cpu().MatmulForwardBf16(got.data(), Bf16Bits(inp).data(), w.data(), bias.data(),
                            residual.data(), s.N, s.C, s.OC);
    EXPECT_TRUE(BitwiseEqual(got, want));
  }
}

// ... and its backward writes dinp rounded to bf16.
TEST(Bf16InputsTest, MatmulBackwardFromRoundedInputEqualsBf16Matmul) {
  const PrecisionScope bf16(MatmulPrecision::kBf16);
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    const auto dout = RandomFloats(static_cast<size_t>(s.N) * s.OC, 10);
    const auto inp = RandomFloats(static_cast<size_t>(s.N) * s.C, 11);
    const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 12);
    // Non-zero starts: dinp is overwritten, dweight and dbias accumulate.
    const auto dinp0 = RandomFloats(inp.size(), 13);
    const auto dw0 = RandomFloats(w.size(), 14);
    const auto db0 = RandomFloats(s.OC, 15);
    std::vector<float> dinp = dinp0, dw = dw0, db = db0;
    Cpu().MatmulBackward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), s.N,
                         s.C, s.OC);
    std::vector<uint16_t> dinp16 = Bf16Bits(dinp0);
    std::vector<float> dw16 = dw0, db16 = db0;
    Cpu().MatmulBackwardBf16(dinp16.data(), dw16.data(), db16.data(), dout.data(),
                             Bf16Bits(inp).data(), w.data(), s.N, s.C, s.OC);
    EXPECT_EQ(dinp16, Bf16Bits(dinp));
    EXPECT_TRUE(BitwiseEqual(dw16, dw));
    EXPECT_TRUE(BitwiseEqual(db16, db));
  }
}

// MatmulForwardToBf16 is the bf16-input matmul with the bias rounded to bf16, rounded once; given
// the bias's bf16 copy it reads that instead of rounding the bias.
TEST(Bf16InputsTest, MatmulForwardToBf16RoundsTheBf16InputMatmul) {
  const PrecisionScope bf16(MatmulPrecision::kBf16);
  const Shape s = kShapes[0];
  const auto bits = Bf16Bits(RandomFloats(static_cast<size_t>(s.N) * s.C, 22));
  const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 23);
  const auto bias = RandomFloats(s.OC, 24);
  const std::vector<uint16_t> bias16 = Bf16Bits(bias);
  std::vector<float> out(static_cast<size_t>(s.N) * s.OC);
  Cpu().MatmulForwardBf16(out.data(), bits.data(), w.data(), Bf16Values(bias16).data(), nullptr,
                          s.N, s.C, s.OC);
  std::vector<uint16_t> out16(out.size()), copied(out.size());
  Cpu().MatmulForwardToBf16(out16.data(), bits.data(), w.data(), bias.data(), s.N, s.C, s.OC);
  EXPECT_EQ(out16, Bf16Bits(out));
  const auto other16 = Bf16Bits(RandomFloats(s.OC, 25));
  Cpu().MatmulForwardToBf16(copied.data(), bits.data(), w.data(), {bias.data(), other16.data()},
                            s.N, s.C, s.OC);
  Cpu().MatmulForwardBf16(out.data(), bits.data(), w.data(), Bf16Values(other16).data(), nullptr,
                          s.N, s.C, s.OC);
  EXPECT_EQ(copied, Bf16Bits(out));
}

// The attention on bf16 qkv writes the fp32 attention's output rounded, and its backward (on a bf16
// dout) is the fp32 backward given that rounded output and the widened dout, rounded.
TEST(Bf16InputsTest, AttentionOnBf16QkvIsAttentionOnTheWidenedQkv) {
  const int B = 2, T = 9, C = 16, NH = 2;
  const auto bits = Bf16Bits(RandomFloats(static_cast<size_t>(B) * T * 3 * C, 25));
  const auto qkv = Bf16Values(bits);
  const auto dout16 = Bf16Bits(RandomFloats(static_cast<size_t>(B) * T * C, 26));
  const auto dout = Bf16Values(dout16);
  std::vector<float> out(dout.size()), lse(static_cast<size_t>(B) * NH * T), dqkv(qkv.size());
  std::vector<uint16_t> out16(out.size()), dqkv16(dqkv.size());
  std::vector<float> lse16(lse.size());
  Cpu().AttentionForward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  Cpu().AttentionForwardBf16(out16.data(), lse16.data(), bits.data(), B, T, C, NH);
  EXPECT_EQ(out16, Bf16Bits(out));
  EXPECT_TRUE(BitwiseEqual(lse16, lse));
  Cpu().AttentionBackward(dqkv.data(), dout.data(), qkv.data(), Bf16Values(out16).data(),
                          lse.data(), B, T, C, NH);
  Cpu().AttentionBackwardBf16(dqkv16.data(), nullptr, dout16.data(), bits.data(), out16.data(),
                              lse.data(), B, T, C, NH);
  EXPECT_EQ(dqkv16, Bf16Bits(dqkv));
  // With the QKV projection's bias gradient: dqkv the same, and the bias gradient the one
  // MatmulBackwardBf16Grad adds from that dqkv, bitwise.
  std::vector<uint16_t> dqkv16_b(dqkv16.size());
  std::vector<float> dbias(3 * C, 0.5f), want(3 * C, 0.5f);
  Cpu().AttentionBackwardBf16(dqkv16_b.data(), dbias.data(), dout16.data(), bits.data(),
                              out16.data(), lse.data(), B, T, C, NH);
  EXPECT_EQ(dqkv16_b, dqkv16);
  const auto ln = Bf16Bits(RandomFloats(static_cast<size_t>(B) * T * C, 27));
  const auto weight = RandomFloats(static_cast<size_t>(3) * C * C, 28);
  std::vector<uint16_t> dln(ln.size());
  std::vector<float> dweight(weight.size());
  Cpu().MatmulBackwardBf16Grad(dln.data(), dweight.data(), want.data(), dqkv16.data(), ln.data(),
                               weight.data(), B * T, C, 3 * C);
  EXPECT_TRUE(BitwiseEqual(dbias, want));
}

// The cross-entropy on bf16 logits is the fp32 one on the widened logits, its gradient rounded;
// the loss alone leaves the logits as they are. GPT-2's vocabulary over 100 rows takes the CPU
// backend two chunks of widened rows.
TEST(Bf16InputsTest, CrossEntropyOnBf16LogitsIsCrossEntropyOnTheWidenedLogits) {
  for (const auto& [N, V, Vp] : {std::tuple{9, 45, 48}, std::tuple{100, 50257, 50304}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " V=" << V);
    const auto bits = Bf16Bits(RandomFloats(static_cast<size_t>(N) * Vp, 51, 3.0f));
    std::vector<int32_t> targets(N);
    for (int n = 0; n < N; ++n) targets[n] = n % 3 == 1 ? -1 : (7 * n) % V;
    std::vector<float> wide = Bf16Values(bits), losses(N), losses16(N);
    std::vector<uint16_t> logits16 = bits;
    Cpu().CrossEntropyBf16(losses16.data(), logits16.data(), targets.data(), N, V, Vp, 0.0f);
    EXPECT_EQ(logits16, bits);
    Cpu().CrossEntropy(losses.data(), wide.data(), targets.data(), N, V, Vp, 0.5f);
    Cpu().CrossEntropyBf16(losses16.data(), logits16.data(), targets.data(), N, V, Vp, 0.5f);
    EXPECT_TRUE(BitwiseEqual(losses16, losses));
    EXPECT_EQ(logits16, Bf16Bits(wide));
  }
}

TEST(Bf16InputsTest, AtFp32TheInputIsWidenedExactly) {
  const Shape s = kShapes[0];
  const auto bits = Bf16Bits(RandomFloats(static_cast<size_t>(s.N) * s.C, 16));
  const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 17);
  std::vector<float> want(static_cast<size_t>(s.N) * s.OC), got(want.size());
  Cpu().MatmulForward(want.data(), Bf16Values(bits).data(), w.data(), nullptr, nullptr, s.N, s.C,
                      s.OC);
  Cpu().MatmulForwardBf16(got.data(), bits.data(), w.data(), nullptr, nullptr, s.N, s.C, s.OC);
  EXPECT_TRUE(BitwiseEqual(got, want));
}

// Every matmul op once, on inputs of seed `seed`, with weight `w` (host memory): their outputs
// (forward, fp32-input backward's three gradients, bf16-input forward and backward, bf16 output)
// one after the other.
std::vector<float> AllMatmuls(const Shape& s, MatmulParam w, uint64_t seed) {
  const size_t NC = static_cast<size_t>(s.N) * s.C, NOC = static_cast<size_t>(s.N) * s.OC;
  const auto inp = RandomFloats(NC, seed);
  const auto bits = Bf16Bits(inp);
  const auto bias = RandomFloats(s.OC, seed + 1);
  const auto dout = RandomFloats(NOC, seed + 2);
  std::vector<float> all, out(NOC), dinp(NC), dw(static_cast<size_t>(s.OC) * s.C), db(s.OC);
  std::vector<uint16_t> out16(NOC);
  auto keep = [&](const std::vector<float>& x) { all.insert(all.end(), x.begin(), x.end()); };
  Cpu().MatmulForward(out.data(), inp.data(), w, bias.data(), nullptr, s.N, s.C, s.OC);
  keep(out);
  Cpu().MatmulBackward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w, s.N, s.C,
                       s.OC);
  keep(dinp), keep(dw), keep(db);
  Cpu().MatmulForwardBf16(out.data(), bits.data(), w, bias.data(), nullptr, s.N, s.C, s.OC);
  keep(out);
  std::vector<uint16_t> dinp16(NC);
  Cpu().MatmulBackwardBf16(dinp16.data(), dw.data(), db.data(), dout.data(), bits.data(), w, s.N,
                           s.C, s.OC);
  keep(Bf16Values(dinp16)), keep(dw), keep(db);
  Cpu().MatmulForwardToBf16(out16.data(), bits.data(), w, bias.data(), s.N, s.C, s.OC);
  keep(Bf16Values(out16));
  return all;
}

// A weight's bf16 copy (MatmulParam::b16) is what the matmuls read at kBf16, in place of
// rounding the weight: given the copy of another weight they compute with that one. At other
// precisions the copy is not read.
TEST(Bf16InputsTest, MatmulsReadTheWeightCopyAtBf16Only) {
  const Shape s = kShapes[1];
  const auto w = RandomFloats(static_cast<size_t>(s.OC) * s.C, 30);
  const auto other = RandomFloats(w.size(), 31);
  const std::vector<uint16_t> other16 = Bf16Bits(other);
  std::vector<uint16_t> rounded(w.size());
  Cpu().RoundToBf16(rounded.data(), w.data(), w.size());
  EXPECT_EQ(rounded, Bf16Bits(w));
  for (MatmulPrecision p :
       {MatmulPrecision::kBf16, MatmulPrecision::kFp16, MatmulPrecision::kFp32}) {
    SCOPED_TRACE(static_cast<int>(p));
    const PrecisionScope scope(p);
    const bool read = p == MatmulPrecision::kBf16;
    EXPECT_TRUE(
        BitwiseEqual(AllMatmuls(s, {w.data(), rounded.data()}, 32), AllMatmuls(s, w.data(), 32)));
    EXPECT_TRUE(BitwiseEqual(AllMatmuls(s, {w.data(), other16.data()}, 32),
                             AllMatmuls(s, read ? other.data() : w.data(), 32)));
  }
}

}  // namespace
}  // namespace spillway::kernels::testing
