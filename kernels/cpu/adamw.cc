#include "kernels/cpu/adamw.h"

#include <cmath>

#include "kernels/cpu/parallel.h"

namespace spillway::kernels::cpu {

void AdamW(float* param, const float* grad, float* m, float* v, size_t n, const AdamWParams& p) {
  constexpr size_t kBlock = 1 << 14;
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta1), p.step));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta2), p.step));
  const float decay = 1.0f - p.lr * p.weight_decay;
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const float g = grad[i] * p.grad_scale;
      const float mi = p.beta1 * m[i] + (1.0f - p.beta1) * g;
      const float vi = p.beta2 * v[i] + (1.0f - p.beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i] * decay - p.lr * (mi / bc1) / (std::sqrt(vi / bc2) + p.eps);
    }
  });
}

}  // namespace spillway::kernels::cpu
