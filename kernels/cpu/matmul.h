// Matmul forward and backward (see kernels/ops.h for the contracts). Cache-blocked: both
// operands are packed into register-tile panels; every output element is one thread's sum over
// the full reduction dimension in ascending order.
#pragma once

namespace spillway::kernels::cpu {

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be null.
void MatmulForward(float* out, const float* inp, const float* weight, const float* bias, int N,
                   int C, int OC);

// dinp (N,C) = dout @ weight (overwritten); dweight (OC,C) += dout^T @ inp; dbias (OC) +=
// column sums of dout (skipped when null).
void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                    const float* weight, int N, int C, int OC);

// dbias (OC) += column sums of dout (N,OC): MatmulBackward's bias part.
void BiasGradient(float* dbias, const float* dout, int N, int OC);

}  // namespace spillway::kernels::cpu
