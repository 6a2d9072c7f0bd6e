#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {
namespace {

constexpr int kAccumulators = 8;

// sum of x[0, n) in double: kAccumulators interleaved partial sums, added pairwise.
double SumAsDouble(const float* x, int n) {
  double acc[kAccumulators] = {};
  int i = 0;
  for (; i + kAccumulators <= n; i += kAccumulators) {
    for (int j = 0; j < kAccumulators; ++j) acc[j] += x[i + j];
  }
  for (; i < n; ++i) acc[0] += x[i];
  for (int w = kAccumulators / 2; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  }
  return acc[0];
}

}  // namespace

void CrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V, int Vp,
                  float dlogits_scale) {
  ParallelForBlocks(N, 1, [&](size_t n, size_t) {
    float* x = logits + n * Vp;
    const int target = targets[n];
    if (target < 0) {
      losses[n] = 0.0f;
      if (dlogits_scale != 0.0f) std::fill_n(x, Vp, 0.0f);
      return;
    }
    thread_local std::vector<float> exps;
    exps.resize(V);
    float* e = exps.data();
    const float max = Max(x, V);
    for (int i = 0; i < V; ++i) e[i] = FastExp(x[i] - max);
    const double sum = SumAsDouble(e, V);
    losses[n] = static_cast<float>(std::log(sum) + max - x[target]);
    if (dlogits_scale == 0.0f) return;
    const float factor = static_cast<float>(dlogits_scale / sum);
    for (int i = 0; i < V; ++i) x[i] = e[i] * factor;
    x[target] -= dlogits_scale;
    std::fill(x + V, x + Vp, 0.0f);
  });
}

}  // namespace spillway::kernels::cpu
