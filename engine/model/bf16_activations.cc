#include "engine/model/bf16_activations.h"

namespace spillway {
namespace {

uint16_t* Bits(float* p) { return reinterpret_cast<uint16_t*>(p); }
const uint16_t* Bits(const float* p) { return reinterpret_cast<const uint16_t*>(p); }

kernels::MatmulDout Dout(const float* dout, const GradCopies* copies) {
  if (copies == nullptr) return dout;
  return {dout, Bits(copies->b16), copies->sums};
}

}  // namespace

bool Bf16Activations::Enabled(kernels::MatmulPrecision precision, int N, int C) {
  return precision == kernels::MatmulPrecision::kBf16 && N % 8 == 0 && C % 8 == 0;
}

void Bf16Activations::LayerNormForward(float* out, float* mean, float* rstd, const float* inp,
                                       const float* weight, const float* bias, int N, int C) const {
  if (bf16_) {
    ops_.LayerNormForwardBf16(Bits(out), mean, rstd, inp, weight, bias, N, C);
  } else {
    ops_.LayerNormForward(out, mean, rstd, inp, weight, bias, N, C);
  }
}

void Bf16Activations::ProjectionGeluForward(float* out, float* pre, const float* inp,
                                            kernels::MatmulParam weight, kernels::MatmulParam bias,
                                            int N, int C, int OC) const {
  if (bf16_) {
    ops_.MatmulGeluForwardToBf16(Bits(out), Bits(pre), Bits(inp), weight, bias, N, C, OC);
  } else {
    ops_.MatmulForward(pre, inp, weight, bias.f32, nullptr, N, C, OC);
    ops_.GeluForward(out, pre, static_cast<size_t>(N) * OC);
  }
}

void Bf16Activations::MatmulGeluBackward(float* dpre, float* dweight, float* dbias,
                                         const float* dout, const float* h, const float* pre,
                                         kernels::MatmulParam weight, int N, int C, int OC,
                                         const GradCopies* dout_copies) const {
  if (bf16_) {
    ops_.MatmulGeluBackwardBf16(Bits(dpre), dweight, dbias, Dout(dout, dout_copies), Bits(h),
                                Bits(pre), weight, N, C, OC);
  } else {
    ops_.MatmulBackward(dpre, dweight, dbias, dout, h, weight, N, C, OC);
    ops_.GeluBackward(dpre, pre, dpre, static_cast<size_t>(N) * C);
  }
}

void Bf16Activations::MatmulForward(float* out, const float* inp, kernels::MatmulParam weight,
                                    const float* bias, const float* residual, int N, int C,
                                    int OC) const {
  if (bf16_) {
    ops_.MatmulForwardBf16(out, Bits(inp), weight, bias, residual, N, C, OC);
  } else {
    ops_.MatmulForward(out, inp, weight, bias, residual, N, C, OC);
  }
}

void Bf16Activations::MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                                     const float* inp, kernels::MatmulParam weight, int N, int C,
                                     int OC, const GradCopies* dout_copies) const {
  if (bf16_) {
    ops_.MatmulBackwardBf16(Bits(dinp), dweight, dbias, Dout(dout, dout_copies), Bits(inp), weight,
                            N, C, OC);
  } else {
    ops_.MatmulBackward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
  }
}

void Bf16Activations::LayerNormBackward(float* dinp, float* dweight, float* dbias,
                                        const float* dout, const float* inp, const float* weight,
                                        const float* mean, const float* rstd, int N, int C,
                                        const GradCopies* dinp_copies) const {
  if (bf16_) {
    ops_.LayerNormBackwardBf16(dinp, dweight, dbias, Bits(dout), inp, weight, mean, rstd, N, C,
                               dinp_copies == nullptr ? nullptr : Bits(dinp_copies->b16),
                               dinp_copies == nullptr ? nullptr : dinp_copies->sums);
  } else {
    ops_.LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }
}

void Bf16Activations::ProjectionBackward(float* dinp, float* dweight, float* dbias,
                                         const float* dout, const float* inp,
                                         kernels::MatmulParam weight, int N, int C, int OC) const {
  if (bf16_) {
    ops_.MatmulBackwardBf16Grad(Bits(dinp), dweight, dbias, Bits(dout), Bits(inp), weight, N, C,
                                OC);
  } else {
    ops_.MatmulBackward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
  }
}

void Bf16Activations::ProjectionForward(float* out, const float* inp, kernels::MatmulParam weight,
                                        kernels::MatmulParam bias, int N, int C, int OC) const {
  if (bf16_) {
    ops_.MatmulForwardToBf16(Bits(out), Bits(inp), weight, bias, N, C, OC);
  } else {
    ops_.MatmulForward(out, inp, weight, bias.f32, nullptr, N, C, OC);
  }
}

void Bf16Activations::CrossEntropy(float* losses, float* logits, const int32_t* targets, int N,
                                   int V, int Vp, float dlogits_scale) const {
  if (bf16_) {
    ops_.CrossEntropyBf16(losses, Bits(logits), targets, N, V, Vp, dlogits_scale);
  } else {
    ops_.CrossEntropy(losses, logits, targets, N, V, Vp, dlogits_scale);
  }
}

void Bf16Activations::AttentionForward(float* out, float* lse, const float* qkv, int B, int T,
                                       int C, int NH) const {
  if (bf16_) {
    ops_.AttentionForwardBf16(Bits(out), lse, Bits(qkv), B, T, C, NH);
  } else {
    ops_.AttentionForward(out, lse, qkv, B, T, C, NH);
  }
}

float* Bf16Activations::AttentionBackward(float* dqkv, float* dqkv_bias, const float* dout,
                                          const float* qkv, const float* out, const float* lse,
                                          int B, int T, int C, int NH) const {
  if (bf16_) {
    ops_.AttentionBackwardBf16(Bits(dqkv), dqkv_bias, Bits(dout), Bits(qkv), Bits(out), lse, B, T,
                               C, NH);
    return nullptr;
  }
  ops_.AttentionBackward(dqkv, dout, qkv, out, lse, B, T, C, NH);
  return dqkv_bias;
}

}  // namespace spillway
