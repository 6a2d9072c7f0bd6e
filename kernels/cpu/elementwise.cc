#include "kernels/cpu/elementwise.h"

#include <cstring>

#include "kernels/cpu/parallel.h"

namespace spillway::kernels::cpu {
namespace {
constexpr size_t kBlock = 1 << 16;
}  // namespace

void Fill(float* x, float value, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) x[i] = value;
  });
}

void Add(float* out, const float* a, const float* b, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
  });
}

void Accumulate(float* y, const float* x, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) y[i] += x[i];
  });
}

void Copy(float* dst, const float* src, size_t n) {
  ParallelForBlocks(n, kBlock, [&](size_t begin, size_t end) {
    std::memcpy(dst + begin, src + begin, (end - begin) * sizeof(float));
  });
}

}  // namespace spillway::kernels::cpu
