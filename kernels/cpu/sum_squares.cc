#include "kernels/cpu/sum_squares.h"

#include <vector>

#include "kernels/cpu/parallel.h"

namespace spillway::kernels::cpu {
namespace {

constexpr size_t kChunk = 1 << 14;
constexpr int kAccumulators = 8;

// Sum of squares of x[0, n) in double: kAccumulators interleaved partial sums added pairwise.
double ChunkSumSquares(const float* x, size_t n) {
  double acc[kAccumulators] = {};
  size_t i = 0;
  for (; i + kAccumulators <= n; i += kAccumulators) {
    for (int j = 0; j < kAccumulators; ++j) {
      const double xj = x[i + j];
      acc[j] += xj * xj;
    }
  }
  for (; i < n; ++i) {
    const double xi = x[i];
    acc[0] += xi * xi;
  }
  for (int w = kAccumulators / 2; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  }
  return acc[0];
}

}  // namespace

void SumSquares(double* out, const float* x, size_t n) {
  std::vector<double> partial((n + kChunk - 1) / kChunk);
  ParallelForBlocks(n, kChunk, [&](size_t begin, size_t end) {
    partial[begin / kChunk] = ChunkSumSquares(x + begin, end - begin);
  });
  double sum = 0.0;
  for (double s : partial) sum += s;
  *out = sum;
}

double SumInOrder(const float* x, size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  return sum;
}

}  // namespace spillway::kernels::cpu
