// SwiGLU on the fused gate/up projection gu (N,2F) (kernels/ops.h), forward and backward.
// Grid-stride loops, one thread per output element (n, j); the exponent is clamped like the
// CPU's FastExp so that both backends agree on extreme inputs.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

__device__ __forceinline__ float ExpNeg(float g) { return expf(fminf(fmaxf(-g, -87.0f), 88.0f)); }

__global__ void SwiGluForwardKernel(float* out, const float* gu, int F, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const size_t row = i / F;
    const size_t j = i % F;
    const float* gate = gu + row * 2 * F;
    const float g = gate[j];
    out[i] = g / (1.0f + ExpNeg(g)) * gate[F + j];
  }
}

__global__ void SwiGluBackwardKernel(float* dgu, const float* dout, const float* gu, int F,
                                     size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const size_t row = i / F;
    const size_t j = i % F;
    const float* gate = gu + row * 2 * F;
    float* dgate = dgu + row * 2 * F;
    const float g = gate[j];
    const float up = gate[F + j];
    const float d = dout[i];
    const float e = ExpNeg(g);
    const float sig = 1.0f / (1.0f + e);
    const float one_minus_sig = e * sig;
    dgate[j] = d * up * (sig * (1.0f + g * one_minus_sig));
    dgate[F + j] = d * (g / (1.0f + e));
  }
}

}  // namespace

cudaError_t LaunchSwiGluForward(float* out, const float* gu, int N, int F, cudaStream_t stream) {
  if (N <= 0 || F <= 0) return cudaSuccess;
  const size_t n = static_cast<size_t>(N) * F;
  SwiGluForwardKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(out, gu, F, n);
  return cudaGetLastError();
}

cudaError_t LaunchSwiGluBackward(float* dgu, const float* dout, const float* gu, int N, int F,
                                 cudaStream_t stream) {
  if (N <= 0 || F <= 0) return cudaSuccess;
  const size_t n = static_cast<size_t>(N) * F;
  SwiGluBackwardKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(dgu, dout, gu, F, n);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
