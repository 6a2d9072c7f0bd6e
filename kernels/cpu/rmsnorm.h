// RMSNorm (Llama), forward and backward (see kernels/ops.h for the contracts).
#pragma once

namespace spillway::kernels::cpu {

// out (N,C) = inp * rstd * weight; rstd (N) = 1/sqrt(mean(inp^2) + eps). One row per task.
void RmsNormForward(float* out, float* rstd, const float* inp, const float* weight, float eps,
                    int N, int C);

// dinp (N,C) += rstd * (dout*weight - norm * mean(dout*weight*norm)), norm = inp * rstd;
// dweight (C) += sum over rows of dout * norm, each block of channels summed over rows in order.
void RmsNormBackward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, const float* rstd, int N, int C);

}  // namespace spillway::kernels::cpu
