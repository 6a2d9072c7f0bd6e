// The scalar AdamW update of one element, in the operation order of cpu_adam_kernels.h. For the
// portable kernel and the compact-state kernels only: files compiled with ISA flags
// (cpu_adam_avx2.cc, cpu_adam_avx512.cc) must not include it (see cpu_adam_kernels.h).
#pragma once

#include <cmath>

#include "kernels/cpu/cpu_adam_kernels.h"

namespace spillway::kernels::cpu {

// Updates m and v and returns the new param.
inline float AdamWElement(const AdamWStep& s, float param, float grad, float& m, float& v) {
  const float g = grad * s.grad_scale;
  m = s.beta1 * m + s.one_minus_beta1 * g;
  v = s.beta2 * v + s.one_minus_beta2 * g * g;
  return param * s.decay - s.lr * (m / s.bc1) / (std::sqrt(v / s.bc2) + s.eps);
}

}  // namespace spillway::kernels::cpu
