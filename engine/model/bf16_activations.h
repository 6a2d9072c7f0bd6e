// The activations that a bf16 matmul precision lets the model keep in bf16 (kernels::Ops' bf16
// ops): those that only feed matmuls (a LayerNorm's or GELU's output), which a bf16 matmul rounds
// anyway, and the QKV projection's output, which the tensor-core attention rounds anyway. Written
// and read as bf16 when the ops multiply in bf16 (no rounding pass before each GEMM or attention,
// half the bytes), as fp32 otherwise. Their buffers are planned as fp32 either way; bf16 values
// fill the first half. Decided per pass from the ops' current precision, so a forward and its
// backward (and a checkpointed recompute) agree as long as the precision is not changed between
// them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace spillway {

class Bf16Activations {
 public:
  // bf16 when ops multiply in bf16 and N and C are multiples of 8 (every matmul dimension of the
  // models then is: the CUDA backend reads such inputs without widening them).
  Bf16Activations(kernels::Ops& ops, int N, int C);

  bool bf16() const { return bf16_; }

  // The ops of kernels/ops.h of the same name, with `out` / `inp` the matmul input.
  void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int N, int C) const;
  void GeluForward(float* out, const float* inp, size_t n) const;
  void MatmulForward(float* out, const float* inp, const float* weight, const float* bias,
                     const float* residual, int N, int C, int OC) const;
  void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                      const float* inp, const float* weight, int N, int C, int OC) const;
  // The QKV projection (out = qkv, bf16: MatmulForwardToBf16) and the attention ops reading qkv.
  void QkvForward(float* qkv, const float* inp, const float* weight, const float* bias, int N,
                  int C, int OC) const;
  void AttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C,
                        int NH) const;
  void AttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                         const float* lse, int B, int T, int C, int NH) const;
  // GeluBackward(dpost, pre, dpost), then MatmulBackward with dpost as dout; in bf16 fused
  // (Ops::GeluMatmulBackwardBf16), and dpost is left as it is. Either way dpost is scratch after.
  void GeluMatmulBackward(float* dinp, float* dweight, float* dbias, float* dpost, const float* pre,
                          const float* inp, const float* weight, int N, int C, int OC) const;

 private:
  kernels::Ops& ops_;
  bool bf16_;
};

}  // namespace spillway
