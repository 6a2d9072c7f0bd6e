// The activations that a bf16 matmul precision lets the model keep in bf16 (kernels::Ops' bf16
// ops): those that only feed matmuls (a LayerNorm's or GELU's output), which a bf16 matmul rounds
// anyway, the QKV projection's output, which the tensor-core attention rounds anyway, the MLP's
// pre-activation (the up-projection's output, rounded once; the down-projection's backward reads
// it for the GELU's gradient), the attention's output (the attention projection and the
// attention's own backward read it), the head's logits (the cross-entropy reads them widened and
// writes their gradient over them), and in the backward the gradients passed between the matmuls,
// the attention and the LayerNorms (each matmul's dinp rounded once; the residual stream's gradient
// stays fp32). As under PyTorch's autocast: the pre-activation, the attention's output, the logits
// and the gradients change results within bf16 rounding, on both backends alike. Written and read
// as bf16 when the ops multiply in bf16 (no rounding pass before each GEMM or attention, half the
// bytes and half the memory), as fp32 otherwise. Decided once, when the model is created (Enabled,
// from the ops' precision then), since it sizes the buffers: a model created at kBf16 keeps them in
// bf16 whatever the precision later (the bf16 ops stay valid: at fp32 they widen their bf16 inputs
// exactly).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace spillway {

// The residual stream's gradient's bf16 copy (N*C bf16 values in floats' storage) and column sums
// (C floats), which with bf16 the LayerNorm backward that writes the gradient also writes
// (LayerNormBackwardBf16's dinp16, dinp_sums) for the matmul backward that reads it next
// (kernels::MatmulDout).
struct GradCopies {
  float* b16;
  float* sums;
};

class Bf16Activations {
 public:
  // Whether a model of N rows and C channels whose ops multiply at `precision` keeps these
  // activations in bf16: kBf16, and N and C multiples of 8 (every matmul dimension of the models
  // then is: the CUDA backend reads such inputs without widening them).
  static bool Enabled(kernels::MatmulPrecision precision, int N, int C);
  // The floats to plan for such an activation of n values: n, or the n bf16 values' half.
  static size_t Floats(size_t n, bool bf16) { return bf16 ? (n + 1) / 2 : n; }

  Bf16Activations(kernels::Ops& ops, bool bf16) : ops_(ops), bf16_(bf16) {}

  // The ops of kernels/ops.h of the same name, with `out` / `inp` the matmul input.
  void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int N, int C) const;
  void MatmulForward(float* out, const float* inp, kernels::MatmulParam weight, const float* bias,
                     const float* residual, int N, int C, int OC) const;
  // With bf16 the matmuls' backwards write dinp as bf16 (MatmulBackwardBf16,
  // MatmulBackwardBf16Grad), which only this class's AttentionBackward and LayerNormBackward
  // read, as PyTorch's autocast hands bf16 gradients to them.
  // With bf16 and dout_copies (dout's, as LayerNormBackward wrote them), the GEMMs read the copy
  // and the bias gradient adds the sums; without bf16 they are not read.
  void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                      const float* inp, kernels::MatmulParam weight, int N, int C, int OC,
                      const GradCopies* dout_copies = nullptr) const;
  // LayerNormBackward with dout such a dinp (LayerNormBackwardBf16 with bf16); dinp stays fp32.
  // With bf16 and dinp_copies it writes dinp's copies there too; without bf16 it does not.
  void LayerNormBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                         const float* inp, const float* weight, const float* mean,
                         const float* rstd, int N, int C,
                         const GradCopies* dinp_copies = nullptr) const;
  // A projection whose output only the attention, GELU or the cross-entropy reads (qkv, the MLP's
  // pre-activation, the logits: bf16 by MatmulForwardToBf16), and the ops reading it: the
  // attention, GELU, the cross-entropy (CrossEntropyBf16 writes the logits' gradient over them in
  // bf16) and their backwards.
  void ProjectionForward(float* out, const float* inp, kernels::MatmulParam weight,
                         kernels::MatmulParam bias, int N, int C, int OC) const;
  // The MLP's up-projection with its GELU: pre = inp @ weight^T + bias, out = gelu(pre); with
  // bf16 one op (MatmulGeluForwardToBf16), else MatmulForward and GeluForward.
  void ProjectionGeluForward(float* out, float* pre, const float* inp, kernels::MatmulParam weight,
                             kernels::MatmulParam bias, int N, int C, int OC) const;
  // The down-projection's backward through that GELU (h = gelu(pre) its input): dpre, the
  // gradient of pre (bf16 with bf16: MatmulGeluBackwardBf16; else MatmulBackward, GeluBackward).
  // dout_copies as MatmulBackward's.
  void MatmulGeluBackward(float* dpre, float* dweight, float* dbias, const float* dout,
                          const float* h, const float* pre, kernels::MatmulParam weight, int N,
                          int C, int OC, const GradCopies* dout_copies = nullptr) const;
  // With bf16, the attention's backward reads dout as bf16 and writes qkv's gradient as bf16
  // (AttentionBackwardBf16), which, as dpre, only the projection's backward reads
  // (ProjectionBackward: MatmulBackwardBf16Grad).
  void ProjectionBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, kernels::MatmulParam weight, int N, int C,
                          int OC) const;
  void CrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V, int Vp,
                    float dlogits_scale) const;
  void AttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C,
                        int NH) const;
  // With bf16 the backward also adds the QKV projection's bias gradient into dqkv_bias (may be
  // null) and returns null; otherwise it returns dqkv_bias: the projection's backward adds what
  // it returns.
  float* AttentionBackward(float* dqkv, float* dqkv_bias, const float* dout, const float* qkv,
                           const float* out, const float* lse, int B, int T, int C, int NH) const;

 private:
  kernels::Ops& ops_;
  bool bf16_;
};

}  // namespace spillway
