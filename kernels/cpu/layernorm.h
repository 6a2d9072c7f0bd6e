// LayerNorm over the last dimension, eps = 1e-5, biased variance (see kernels/ops.h).
#pragma once

namespace spillway::kernels::cpu {

// out (N,C) = (inp - mean) * rstd * weight + bias; saves mean (N) and rstd (N).
void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                      const float* bias, int N, int C);

// dinp (N,C) += ...; dweight (C) += ...; dbias (C) += ... (each thread owns a block of
// channels and sums the rows in order).
void LayerNormBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                       const float* inp, const float* weight, const float* mean, const float* rstd,
                       int N, int C);

}  // namespace spillway::kernels::cpu
