#include "kernels/cpu/round16.h"

#include <cstring>

#include "core/safetensors.h"
#include "kernels/cpu/parallel.h"

namespace spillway::kernels::cpu {

namespace {
constexpr size_t kBlock = size_t{1} << 14;
}  // namespace

void RoundToPrecision(MatmulPrecision precision, const float* x, float* out, size_t n) {
  switch (precision) {
    case MatmulPrecision::kFp32:
      if (out != x) std::memmove(out, x, n * sizeof(float));
      return;
    case MatmulPrecision::kBf16:
      ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) out[i] = Bf16ToFloat(FloatToBf16(x[i]));
      });
      return;
    case MatmulPrecision::kFp16:
      ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) out[i] = F16ToFloat(FloatToF16(x[i]));
      });
      return;
  }
}

void PackBf16(const float* x, uint16_t* out, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) out[i] = FloatToBf16(x[i]);
  });
}

void UnpackBf16(const uint16_t* x, float* out, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) out[i] = Bf16ToFloat(x[i]);
  });
}

}  // namespace spillway::kernels::cpu
