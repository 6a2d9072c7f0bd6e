// SwiGLU on a fused gate/up projection (see kernels/ops.h for the contract and the layout).
#pragma once

namespace spillway::kernels::cpu {

// out (N,F) = silu(gu[:, :F]) * gu[:, F:], silu(x) = x / (1 + exp(-x)).
void SwiGluForward(float* out, const float* gu, int N, int F);

// dgu (N,2F) = [dout * up * silu'(gate), dout * silu(gate)] (overwritten).
void SwiGluBackward(float* dgu, const float* dout, const float* gu, int N, int F);

}  // namespace spillway::kernels::cpu
