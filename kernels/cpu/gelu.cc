#include "kernels/cpu/gelu.h"

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {
namespace {

constexpr size_t kBlock = 1 << 14;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// With u = sqrt(2/pi) (x + 0.044715 x^3) and e = exp(-2u): 1 + tanh(u) = 2 / (1 + e), so
// gelu(x) = x / (1 + e), and 1 - tanh(u)^2 = 4 e / (1 + e)^2: no cancellation anywhere.
inline float ExpMinus2U(float x) {
  return FastExp(-2.0f * kSqrt2OverPi * (x + kCubic * x * x * x));
}

}  // namespace

void GeluForward(float* out, const float* inp, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const float x = inp[i];
      out[i] = x / (1.0f + ExpMinus2U(x));
    }
  });
}

void GeluBackward(float* dinp, const float* inp, const float* dout, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const float x = inp[i];
      const float e = ExpMinus2U(x);
      const float sig = 1.0f / (1.0f + e);  // 0.5 (1 + tanh u)
      const float one_minus_sig = e * sig;  // in [0, 1] even where e is huge
      // gelu' = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx, 0.5 (1 - tanh^2 u) = 2 sig (1-sig).
      const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
      const float grad = sig + 2.0f * x * sig * one_minus_sig * du;
      dinp[i] = grad * dout[i];
    }
  });
}

}  // namespace spillway::kernels::cpu
