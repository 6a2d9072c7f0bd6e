// Bias gradient of the matmul: dbias (OC) += column sums of dout (N,OC), in a fixed order
// (no atomics), so results are bitwise reproducible.
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

constexpr int kCols = 32;       // columns per block (threadIdx.x): coalesced row segments
constexpr int kRowGroups = 32;  // row groups per block (threadIdx.y)

// Block (kCols, kRowGroups) owns columns [blockIdx.x * kCols, +kCols). Thread (x, y) sums rows
// y, y + kRowGroups, ... of its column in ascending order; the kRowGroups partial sums are
// then added in ascending y by the threads of row group 0.
__global__ void __launch_bounds__(kCols* kRowGroups)
    BiasGradientKernel(float* __restrict__ dbias, const float* __restrict__ dout, int N, int OC) {
  __shared__ float partial[kRowGroups][kCols + 1];
  const int col = blockIdx.x * kCols + threadIdx.x;
  float sum = 0.0f;
  if (col < OC) {
    for (int n = threadIdx.y; n < N; n += kRowGroups) {
      sum += dout[static_cast<size_t>(n) * OC + col];
    }
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < OC) {
    float total = 0.0f;
#pragma unroll
    for (int y = 0; y < kRowGroups; ++y) total += partial[y][threadIdx.x];
    dbias[col] += total;
  }
}

}  // namespace

cudaError_t LaunchBiasGradient(float* dbias, const float* dout, int N, int OC,
                               cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return cudaGetLastError();
  const unsigned blocks = static_cast<unsigned>((OC + kCols - 1) / kCols);
  BiasGradientKernel<<<blocks, dim3(kCols, kRowGroups), 0, stream>>>(dbias, dout, N, OC);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
