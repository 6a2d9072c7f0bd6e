#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/cpu_adam.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/round16.h"
#include "kernels/cpu/sum_squares.h"
#include "kernels/cpu/swiglu.h"

namespace spillway::kernels {
namespace {

class CpuOps final : public Ops {
 public:
  absl::string_view name() const override { return "cpu"; }

  absl::Status Synchronize() override { return absl::OkStatus(); }

  double peak_flops() const override { return 0.0; }
  Tier memory_tier() const override { return Tier::kHost; }
  void CopyToBackend(void* dst, const void* host_src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, host_src, bytes);
  }
  void CopyToHost(void* host_dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(host_dst, src, bytes);
  }

  void Fill(float* x, float value, size_t n) override { cpu::Fill(x, value, n); }

  void EmbeddingForward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                        int B, int T, int C) override {
    cpu::EmbeddingForward(out, tokens, wte, wpe, B, T, C);
  }
  void EmbeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                         int T, int C) override {
    cpu::EmbeddingBackward(dwte, dwpe, dout, tokens, B, T, C);
  }

  void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int N, int C) override {
    cpu::LayerNormForward(out, mean, rstd, inp, weight, bias, N, C);
  }
  void LayerNormBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                         const float* inp, const float* weight, const float* mean,
                         const float* rstd, int N, int C) override {
    cpu::LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }

  void RmsNormForward(float* out, float* rstd, const float* inp, const float* weight, float eps,
                      int N, int C) override {
    cpu::RmsNormForward(out, rstd, inp, weight, eps, N, C);
  }
  void RmsNormBackward(float* dinp, float* dweight, const float* dout, const float* inp,
                       const float* weight, const float* rstd, int N, int C) override {
    cpu::RmsNormBackward(dinp, dweight, dout, inp, weight, rstd, N, C);
  }

  void SetMatmulPrecision(MatmulPrecision precision) override { precision_ = precision; }
  MatmulPrecision matmul_precision() const override { return precision_; }
  void MatmulForward(float* out, const float* inp, MatmulParam weight, const float* bias,
                     const float* residual, int N, int C, int OC) override {
    if (precision_ != MatmulPrecision::kFp32) inp = Rounded(0, inp, static_cast<size_t>(N) * C);
    const float* w = WeightOperand(1, weight, static_cast<size_t>(OC) * C);
    cpu::MatmulForward(out, inp, w, bias, N, C, OC);
    if (residual != nullptr) cpu::Add(out, out, residual, static_cast<size_t>(N) * OC);
  }
  void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                      const float* inp, MatmulParam weight, int N, int C, int OC) override {
    if (precision_ != MatmulPrecision::kFp32) {
      // dbias sums dout in fp32, as the CUDA backend's kernel does.
      if (dbias != nullptr) cpu::BiasGradient(dbias, dout, N, OC);
      dbias = nullptr;
      dout = Rounded(0, dout, static_cast<size_t>(N) * OC);
      inp = Rounded(1, inp, static_cast<size_t>(N) * C);
    }
    const float* w = WeightOperand(2, weight, static_cast<size_t>(OC) * C);
    cpu::MatmulBackward(dinp, dweight, dbias, dout, inp, w, N, C, OC);
  }

  void LayerNormForwardBf16(uint16_t* out, float* mean, float* rstd, const float* inp,
                            const float* weight, const float* bias, int N, int C) override {
    float* wide = Widened(static_cast<size_t>(N) * C);
    cpu::LayerNormForward(wide, mean, rstd, inp, weight, bias, N, C);
    cpu::PackBf16(wide, out, static_cast<size_t>(N) * C);
  }
  void MatmulBackwardBf16Grad(uint16_t* dinp, float* dweight, float* dbias, const uint16_t* dout,
                              const uint16_t* inp, MatmulParam weight, int N, int C,
                              int OC) override {
    MatmulBackwardBf16(dinp, dweight, dbias, WideDout(dout, static_cast<size_t>(N) * OC), inp,
                       weight, N, C, OC);
  }
  void LayerNormBackwardBf16(float* dinp, float* dweight, float* dbias, const uint16_t* dout,
                             const float* inp, const float* weight, const float* mean,
                             const float* rstd, int N, int C, uint16_t* dinp16,
                             float* dinp_sums) override {
    const size_t n = static_cast<size_t>(N) * C;
    cpu::LayerNormBackward(dinp, dweight, dbias, WideDout(dout, n), inp, weight, mean, rstd, N, C);
    if (dinp16 == nullptr) return;
    cpu::PackBf16(dinp, dinp16, n);
    std::fill(dinp_sums, dinp_sums + C, 0.0f);
    cpu::BiasGradient(dinp_sums, dinp, N, C);
  }
  void MatmulForwardBf16(float* out, const uint16_t* inp, MatmulParam weight, const float* bias,
                         const float* residual, int N, int C, int OC) override {
    MatmulForward(out, Unpacked(inp, static_cast<size_t>(N) * C), weight, bias, residual, N, C, OC);
  }
  void MatmulBackwardBf16(uint16_t* dinp, float* dweight, float* dbias, MatmulDout dout,
                          const uint16_t* inp, MatmulParam weight, int N, int C, int OC) override {
    matmul_out_.resize(static_cast<size_t>(N) * C);
    MatmulBackward(matmul_out_.data(), dweight, dout.sums == nullptr ? dbias : nullptr, dout.f32,
                   Unpacked(inp, static_cast<size_t>(N) * C), weight, N, C, OC);
    AddDoutSums(dbias, dout, OC);
    cpu::PackBf16(matmul_out_.data(), dinp, matmul_out_.size());
  }

  void MatmulForwardToBf16(uint16_t* out, const uint16_t* inp, MatmulParam weight, MatmulParam bias,
                           int N, int C, int OC) override {
    const float* sums = SumWithRoundedBias(inp, weight, bias, N, C, OC);
    cpu::PackBf16(sums, out, matmul_out_.size());
  }
  void MatmulGeluForwardToBf16(uint16_t* out, uint16_t* pre, const uint16_t* inp,
                               MatmulParam weight, MatmulParam bias, int N, int C,
                               int OC) override {
    const float* x = SumWithRoundedBias(inp, weight, bias, N, C, OC);
    const size_t n = matmul_out_.size();
    cpu::PackBf16(x, pre, n);
    std::vector<float>& gelu = operand_scratch_[0];
    gelu.resize(n);
    cpu::GeluForward(gelu.data(), x, n);
    cpu::PackBf16(gelu.data(), out, n);
  }
  void MatmulGeluBackwardBf16(uint16_t* dpre, float* dweight, float* dbias, MatmulDout dout,
                              const uint16_t* h, const uint16_t* pre, MatmulParam weight, int N,
                              int C, int OC) override {
    const size_t n = static_cast<size_t>(N) * C;
    matmul_out_.resize(n);
    MatmulBackward(matmul_out_.data(), dweight, dout.sums == nullptr ? dbias : nullptr, dout.f32,
                   Unpacked(h, n), weight, N, C, OC);
    AddDoutSums(dbias, dout, OC);
    cpu::GeluBackward(matmul_out_.data(), WidenInto(operand_scratch_[0], pre, n),
                      matmul_out_.data(), n);
    cpu::PackBf16(matmul_out_.data(), dpre, n);
  }
  void AttentionForwardBf16(uint16_t* out, float* lse, const uint16_t* qkv, int B, int T, int C,
                            int NH) override {
    const size_t n = static_cast<size_t>(B) * T * C;
    std::vector<float>& out32 = operand_scratch_[0];
    out32.resize(n);
    cpu::AttentionForward(out32.data(), lse, Unpacked(qkv, 3 * n), B, T, C, NH);
    cpu::PackBf16(out32.data(), out, n);
  }
  void AttentionBackwardBf16(uint16_t* dqkv, float* dbias, const uint16_t* dout,
                             const uint16_t* qkv, const uint16_t* out, const float* lse, int B,
                             int T, int C, int NH) override {
    const size_t n = static_cast<size_t>(B) * T * C;
    std::vector<float>& dqkv32 = operand_scratch_[1];
    dqkv32.resize(3 * n);
    cpu::AttentionBackward(dqkv32.data(), WideDout(dout, n), Unpacked(qkv, 3 * n),
                           WidenInto(operand_scratch_[0], out, n), lse, B, T, C, NH);
    cpu::PackBf16(dqkv32.data(), dqkv, 3 * n);
    if (dbias != nullptr) cpu::BiasGradient(dbias, WideDout(dqkv, 3 * n), B * T, 3 * C);
  }

  void AttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C,
                        int NH) override {
    cpu::AttentionForward(out, lse, qkv, B, T, C, NH);
  }
  void AttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                         const float* lse, int B, int T, int C, int NH) override {
    cpu::AttentionBackward(dqkv, dout, qkv, out, lse, B, T, C, NH);
  }

  void GqaAttentionForward(float* out, float* lse, const float* qkv, int B, int T, int NH, int NKV,
                           int hs) override {
    cpu::GqaAttentionForward(out, lse, qkv, B, T, NH, NKV, hs);
  }
  void GqaAttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                            const float* lse, int B, int T, int NH, int NKV, int hs) override {
    cpu::GqaAttentionBackward(dqkv, dout, qkv, out, lse, B, T, NH, NKV, hs);
  }

  void RopeForward(float* qkv, int B, int T, int NH, int NKV, int hs, double theta) override {
    cpu::RopeForward(qkv, B, T, NH, NKV, hs, theta);
  }
  void RopeBackward(float* dqkv, int B, int T, int NH, int NKV, int hs, double theta) override {
    cpu::RopeBackward(dqkv, B, T, NH, NKV, hs, theta);
  }

  void SwiGluForward(float* out, const float* gu, int N, int F) override {
    cpu::SwiGluForward(out, gu, N, F);
  }
  void SwiGluBackward(float* dgu, const float* dout, const float* gu, int N, int F) override {
    cpu::SwiGluBackward(dgu, dout, gu, N, F);
  }

  void GeluForward(float* out, const float* inp, size_t n) override {
    cpu::GeluForward(out, inp, n);
  }
  void GeluBackward(float* dinp, const float* inp, const float* dout, size_t n) override {
    cpu::GeluBackward(dinp, inp, dout, n);
  }

  void Add(float* out, const float* a, const float* b, size_t n) override {
    cpu::Add(out, a, b, n);
  }
  void Accumulate(float* y, const float* x, size_t n) override { cpu::Accumulate(y, x, n); }

  void CrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V, int Vp,
                    float dlogits_scale) override {
    cpu::CrossEntropy(losses, logits, targets, N, V, Vp, dlogits_scale);
  }
  // Rows are independent: widened a chunk of them at a time, so that the fp32 side stays small.
  void CrossEntropyBf16(float* losses, uint16_t* logits, const int32_t* targets, int N, int V,
                        int Vp, float dlogits_scale) override {
    constexpr size_t kChunkFloats = size_t{1} << 22;
    const int rows = std::max(1, static_cast<int>(kChunkFloats / std::max(Vp, 1)));
    for (int r0 = 0; r0 < N; r0 += rows) {
      const int n = std::min(rows, N - r0);
      const size_t count = static_cast<size_t>(n) * Vp;
      uint16_t* x = logits + static_cast<size_t>(r0) * Vp;
      float* wide = Widened(count);
      cpu::UnpackBf16(x, wide, count);
      cpu::CrossEntropy(losses + r0, wide, targets + r0, n, V, Vp, dlogits_scale);
      if (dlogits_scale != 0.0f) cpu::PackBf16(wide, x, count);
    }
  }

  void AddSumSquares(double* acc, const float* x, size_t n) override {
    double sum;
    cpu::SumSquares(&sum, x, n);
    *acc += sum;
  }
  void AddSumSquaresParts(double* acc, std::span<const std::span<const float>> parts) override {
    for (const std::span<const float> part : parts) AddSumSquares(acc, part.data(), part.size());
  }
  void AddInOrder(double* acc, const double* values, size_t n) override {
    for (size_t i = 0; i < n; ++i) *acc += values[i];
  }
  void AddMean(double* acc, const float* x, size_t n, size_t divisor) override {
    if (divisor == 0) return;
    const double sum = cpu::SumInOrder(x, n);
    *acc += static_cast<float>(sum / static_cast<double>(divisor));
  }

  void RoundToBf16(uint16_t* out, const float* x, size_t n) override { cpu::PackBf16(x, out, n); }

  void AdamW(float* param, const float* grad, float* m, float* v, size_t n,
             const AdamWParams& p) override {
    // Bitwise equal to the reference cpu::AdamW, vectorised for this CPU.
    cpu::CpuAdamW(param, grad, m, v, /*param_bf16=*/nullptr, n, p);
  }
  void AdamWParts(float* param, uint16_t* param_bf16, const float* grad, float* m, float* v,
                  const size_t* ranges, const float* weight_decays, size_t parts,
                  const AdamWParams& p) override {
    for (size_t k = 0; k < parts; ++k) {
      AdamWParams part = p;
      part.weight_decay = weight_decays[k];
      const size_t b = ranges[2 * k], n = ranges[2 * k + 1] - b;
      cpu::CpuAdamW(param + b, grad + b, m + b, v + b,
                    param_bf16 == nullptr ? nullptr : param_bf16 + b, n, part);
    }
  }

 private:
  // x rounded to the matmul precision, in operand slot `slot`'s scratch.
  const float* Rounded(int slot, const float* x, size_t n) {
    std::vector<float>& out = operand_scratch_[slot];
    out.resize(n);
    cpu::RoundToPrecision(precision_, x, out.data(), n);
    return out.data();
  }

  // A matmul's weight as its products read it: the fp32 values at kFp32; at kBf16 its bf16 copy
  // widened into slot `slot`'s scratch where the caller keeps one; else rounded there.
  const float* WeightOperand(int slot, MatmulParam weight, size_t n) {
    if (precision_ == MatmulPrecision::kFp32) return weight.f32;
    if (precision_ != MatmulPrecision::kBf16 || weight.b16 == nullptr) {
      return Rounded(slot, weight.f32, n);
    }
    return WidenInto(operand_scratch_[slot], weight.b16, n);
  }

  // MatmulForwardToBf16's fp32 sum, inp @ weight^T + round(bias), in matmul_out_.
  const float* SumWithRoundedBias(const uint16_t* inp, MatmulParam weight, MatmulParam bias, int N,
                                  int C, int OC) {
    const float* rounded_bias = nullptr;
    if (bias.f32 != nullptr) {
      bias_rounded_.resize(OC);
      if (bias.b16 != nullptr) {
        cpu::UnpackBf16(bias.b16, bias_rounded_.data(), OC);
      } else {
        cpu::RoundToPrecision(MatmulPrecision::kBf16, bias.f32, bias_rounded_.data(), OC);
      }
      rounded_bias = bias_rounded_.data();
    }
    matmul_out_.resize(static_cast<size_t>(N) * OC);
    MatmulForwardBf16(matmul_out_.data(), inp, weight, rounded_bias, nullptr, N, C, OC);
    return matmul_out_.data();
  }

  // The fp32 side of a bf16 op's input or output (n floats).
  float* Widened(size_t n) {
    widened_.resize(n);
    return widened_.data();
  }
  // x (n bf16 values) widened to fp32 into `into`.
  static const float* WidenInto(std::vector<float>& into, const uint16_t* x, size_t n) {
    into.resize(n);
    cpu::UnpackBf16(x, into.data(), n);
    return into.data();
  }
  // A bf16 input widened, in Widened's buffer.
  const float* Unpacked(const uint16_t* x, size_t n) { return WidenInto(widened_, x, n); }
  // A bf16 gradient widened, in a buffer of its own (an op's bf16 input besides the one Unpacked
  // widens).
  const float* WideDout(const uint16_t* dout, size_t n) { return WidenInto(dout_wide_, dout, n); }
  // The bias gradient's share of a MatmulDout given with its column sums: dbias += sums, which
  // BiasGradient would have added (the same fp32 sums).
  static void AddDoutSums(float* dbias, const MatmulDout& dout, int OC) {
    if (dbias != nullptr && dout.sums != nullptr) cpu::Accumulate(dbias, dout.sums, OC);
  }

  MatmulPrecision precision_ = MatmulPrecision::kFp32;
  std::vector<float> operand_scratch_[3];
  std::vector<float> widened_;
  std::vector<float> matmul_out_;    // MatmulForwardToBf16's / MatmulBackwardBf16's fp32 result
  std::vector<float> bias_rounded_;  // and its bias rounded to bf16
  std::vector<float> dout_wide_;     // a bf16 dout, widened (WideDout)
};

}  // namespace

std::unique_ptr<Ops> MakeCpuOps() { return std::make_unique<CpuOps>(); }

}  // namespace spillway::kernels
