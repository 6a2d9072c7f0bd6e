// Internal to the SIMD CPU AdamW (cpu_adam.cc): the per-step constants and one chunk kernel per
// instruction set. Every kernel performs, per element and in this order, exactly the float
// operations of the reference kernels/cpu/adamw.cc, each rounded on its own (the files are
// compiled with -ffp-contract=off, so no multiply-add is fused):
//   g = grad * grad_scale
//   m = beta1 * m + one_minus_beta1 * g
//   v = beta2 * v + (one_minus_beta2 * g) * g
//   param = param * decay - (lr * (m / bc1)) / (sqrt(v / bc2) + eps)
// which makes every kernel bitwise equal to the reference. If param_bf16 is not null it
// receives the new param rounded to bf16 (spillway::FloatToBf16: nearest even, NaN kept).
// The ISA files define only these functions and file-local helpers: an inline function shared
// by them would be compiled with each file's ISA flags and the linker could keep any one copy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace spillway::kernels::cpu {

struct AdamWStep {
  float lr, beta1, beta2, eps, grad_scale;
  float one_minus_beta1, one_minus_beta2;
  float bc1, bc2;  // bias corrections 1 - beta^step, computed in double as the reference does
  float decay;     // 1 - lr * weight_decay

  static AdamWStep From(const AdamWParams& p);
};

using AdamWChunkFn = void (*)(const AdamWStep& s, float* param, const float* grad, float* m,
                              float* v, uint16_t* param_bf16, size_t n);

void AdamWChunkScalar(const AdamWStep& s, float* param, const float* grad, float* m, float* v,
                      uint16_t* param_bf16, size_t n);
#if defined(__x86_64__)
void AdamWChunkAvx2(const AdamWStep& s, float* param, const float* grad, float* m, float* v,
                    uint16_t* param_bf16, size_t n);
void AdamWChunkAvx512(const AdamWStep& s, float* param, const float* grad, float* m, float* v,
                      uint16_t* param_bf16, size_t n);
#endif

}  // namespace spillway::kernels::cpu
