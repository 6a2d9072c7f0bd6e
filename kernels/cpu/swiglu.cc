#include "kernels/cpu/swiglu.h"

#include <algorithm>
#include <cstddef>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {
namespace {

constexpr size_t kBlockElems = 1 << 14;

size_t RowsPerBlock(int F) { return std::max<size_t>(1, kBlockElems / static_cast<size_t>(F)); }

}  // namespace

void SwiGluForward(float* out, const float* gu, int N, int F) {
  ParallelForBlocks(N, RowsPerBlock(F), [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      const float* gate = gu + n * 2 * F;
      const float* up = gate + F;
      float* o = out + n * F;
      for (int j = 0; j < F; ++j) {
        const float g = gate[j];
        o[j] = g / (1.0f + FastExp(-g)) * up[j];
      }
    }
  });
}

void SwiGluBackward(float* dgu, const float* dout, const float* gu, int N, int F) {
  ParallelForBlocks(N, RowsPerBlock(F), [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      const float* gate = gu + n * 2 * F;
      const float* up = gate + F;
      const float* d = dout + n * F;
      float* dgate = dgu + n * 2 * F;
      float* dup = dgate + F;
      for (int j = 0; j < F; ++j) {
        const float g = gate[j];
        const float e = FastExp(-g);
        const float sig = 1.0f / (1.0f + e);
        const float one_minus_sig = e * sig;  // no cancellation where sig is near 1
        dgate[j] = d[j] * up[j] * (sig * (1.0f + g * one_minus_sig));
        dup[j] = d[j] * (g / (1.0f + e));  // silu(g) exactly as the forward has it
      }
    }
  });
}

}  // namespace spillway::kernels::cpu
