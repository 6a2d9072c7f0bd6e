// The activations that only feed matmuls (a LayerNorm's or GELU's output): written and read as
// bf16 when the ops multiply in bf16 (kernels::Ops' bf16 inputs: no rounding pass before each
// GEMM, half the bytes), as fp32 otherwise. Their buffers are planned as fp32 either way; bf16
// values fill the first half. Decided per pass from the ops' current precision, so a forward and
// its backward (and a checkpointed recompute) agree as long as the precision is not changed
// between them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace spillway {

class MatmulInputs {
 public:
  // bf16 when ops multiply in bf16 and N and C are multiples of 8 (every matmul dimension of the
  // models then is: the CUDA backend reads such inputs without widening them).
  MatmulInputs(kernels::Ops& ops, int N, int C);

  bool bf16() const { return bf16_; }

  // The ops of kernels/ops.h of the same name, with `out` / `inp` the matmul input.
  void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int N, int C) const;
  void GeluForward(float* out, const float* inp, size_t n) const;
  void MatmulForward(float* out, const float* inp, const float* weight, const float* bias,
                     const float* residual, int N, int C, int OC) const;
  void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                      const float* inp, const float* weight, int N, int C, int OC) const;
  // GeluBackward(dpost, pre, dpost), then MatmulBackward with dpost as dout; in bf16 fused
  // (Ops::GeluMatmulBackwardBf16), and dpost is left as it is. Either way dpost is scratch after.
  void GeluMatmulBackward(float* dinp, float* dweight, float* dbias, float* dpost, const float* pre,
                          const float* inp, const float* weight, int N, int C, int OC) const;

 private:
  kernels::Ops& ops_;
  bool bf16_;
};

}  // namespace spillway
