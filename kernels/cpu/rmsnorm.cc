#include "kernels/cpu/rmsnorm.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {

void RmsNormForward(float* out, float* rstd, const float* inp, const float* weight, float eps,
                    int N, int C) {
  ParallelForBlocks(N, 1, [&](size_t n, size_t) {
    const float* x = inp + n * C;
    float* o = out + n * C;
    const float s = 1.0f / std::sqrt(Dot(x, x, C) / C + eps);
    for (int c = 0; c < C; ++c) o[c] = x[c] * s * weight[c];
    rstd[n] = s;
  });
}

void RmsNormBackward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, const float* rstd, int N, int C) {
  ParallelForBlocks(N, 1, [&](size_t n, size_t) {
    const float* x = inp + n * C;
    const float* d = dout + n * C;
    float* di = dinp + n * C;
    const float s = rstd[n];
    thread_local std::vector<float> scratch;
    scratch.resize(2 * static_cast<size_t>(C));
    float* norm = scratch.data();
    float* dnorm = norm + C;
    for (int c = 0; c < C; ++c) {
      norm[c] = x[c] * s;
      dnorm[c] = d[c] * weight[c];
    }
    const float dnorm_norm_mean = Dot(dnorm, norm, C) / C;
    for (int c = 0; c < C; ++c) di[c] += (dnorm[c] - norm[c] * dnorm_norm_mean) * s;
  });
  constexpr size_t kBlock = 64;
  ParallelForBlocks(C, kBlock, [&](size_t c0, size_t c1) {
    float dw[kBlock] = {};
    const size_t w = c1 - c0;
    for (int n = 0; n < N; ++n) {
      const float* x = inp + static_cast<size_t>(n) * C + c0;
      const float* d = dout + static_cast<size_t>(n) * C + c0;
      const float s = rstd[n];
      for (size_t j = 0; j < w; ++j) dw[j] += d[j] * (x[j] * s);
    }
    for (size_t j = 0; j < w; ++j) dweight[c0 + j] += dw[j];
  });
}

}  // namespace spillway::kernels::cpu
