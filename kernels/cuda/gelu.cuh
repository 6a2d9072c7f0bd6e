// GELU, tanh approximation, and its derivative for the CUDA kernels (gelu.cu, and the matmul
// bias pass that applies GELU's backward on the fly, matmul_bias.cu): one definition, so both
// give the same values bitwise. The cancellation-free form of kernels/cpu/gelu.cc: with
// u = sqrt(2/pi) (x + 0.044715 x^3) and e = exp(-2u), gelu(x) = x / (1 + e).
#pragma once

namespace spillway::kernels::cuda {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// exp(-2u), its argument clamped like the CPU's FastExp so that e stays finite.
__device__ __forceinline__ float ExpMinus2U(float x) {
  const float arg = -2.0f * kSqrt2OverPi * (x + kCubic * x * x * x);
  return expf(fminf(fmaxf(arg, -87.0f), 88.0f));
}

__device__ __forceinline__ float Gelu(float x) { return x / (1.0f + ExpMinus2U(x)); }

__device__ __forceinline__ float GeluGrad(float x, float d) {
  const float e = ExpMinus2U(x);
  const float sig = 1.0f / (1.0f + e);  // 0.5 (1 + tanh u)
  const float one_minus_sig = e * sig;
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
  return (sig + 2.0f * x * sig * one_minus_sig * du) * d;
}

}  // namespace spillway::kernels::cuda
