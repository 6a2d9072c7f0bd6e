#include <cmath>

#include "core/safetensors.h"
#include "kernels/cpu/adamw_element.h"
#include "kernels/cpu/cpu_adam_kernels.h"

namespace spillway::kernels::cpu {

AdamWStep AdamWStep::From(const AdamWParams& p) {
  AdamWStep s;
  s.lr = p.lr;
  s.beta1 = p.beta1;
  s.beta2 = p.beta2;
  s.eps = p.eps;
  s.grad_scale = p.grad_scale;
  s.one_minus_beta1 = 1.0f - p.beta1;
  s.one_minus_beta2 = 1.0f - p.beta2;
  s.bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta1), p.step));
  s.bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta2), p.step));
  s.decay = 1.0f - p.lr * p.weight_decay;
  return s;
}

// __restrict (the arrays never overlap) lets the compiler vectorise the loop for the target.
void AdamWChunkScalar(const AdamWStep& s, float* __restrict param, const float* __restrict grad,
                      float* __restrict m, float* __restrict v, uint16_t* param_bf16, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float mi = m[i], vi = v[i];
    param[i] = AdamWElement(s, param[i], grad[i], mi, vi);
    m[i] = mi;
    v[i] = vi;
  }
  if (param_bf16 != nullptr) {
    for (size_t i = 0; i < n; ++i) param_bf16[i] = FloatToBf16(param[i]);
  }
}

}  // namespace spillway::kernels::cpu
