#include "kernels/cpu/embedding.h"

#include <cstddef>

#include "kernels/cpu/parallel.h"

namespace spillway::kernels::cpu {

void EmbeddingForward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                      int T, int C) {
  ParallelForBlocks(static_cast<size_t>(B) * T, 1, [&](size_t bt, size_t) {
    const float* e = wte + static_cast<size_t>(tokens[bt]) * C;
    float* o = out + bt * C;
    if (wpe == nullptr) {
      for (int c = 0; c < C; ++c) o[c] = e[c];
      return;
    }
    const float* p = wpe + (bt % T) * C;
    for (int c = 0; c < C; ++c) o[c] = e[c] + p[c];
  });
}

void EmbeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                       int T, int C) {
  constexpr size_t kBlock = 64;
  ParallelForBlocks(C, kBlock, [&](size_t c0, size_t c1) {
    for (int t = 0; t < T; ++t) {
      float* dp = dwpe == nullptr ? nullptr : dwpe + static_cast<size_t>(t) * C;
      for (int b = 0; b < B; ++b) {
        const size_t bt = static_cast<size_t>(b) * T + t;
        const float* d = dout + bt * C;
        float* de = dwte + static_cast<size_t>(tokens[bt]) * C;
        for (size_t c = c0; c < c1; ++c) de[c] += d[c];
        if (dp != nullptr) {
          for (size_t c = c0; c < c1; ++c) dp[c] += d[c];
        }
      }
    }
  });
}

}  // namespace spillway::kernels::cpu
