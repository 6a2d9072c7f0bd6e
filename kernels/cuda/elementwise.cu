// Fill, Add and Accumulate: grid-stride loops over float4 quads (when every pointer is 16-byte
// aligned) plus a scalar tail. Pointers may alias (Add: out == a or out == b), so no
// __restrict__.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

__global__ void FillKernel(float* x, float value, size_t n, bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    float4* x4 = reinterpret_cast<float4*>(x);
    for (size_t i = tid; i < n4; i += stride) x4[i] = make_float4(value, value, value, value);
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) x[i] = value;
}

__global__ void AddKernel(float* out, const float* a, const float* b, size_t n, bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    float4* o4 = reinterpret_cast<float4*>(out);
    for (size_t i = tid; i < n4; i += stride) {
      const float4 x = a4[i];
      const float4 y = b4[i];
      o4[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) out[i] = a[i] + b[i];
}

__global__ void AccumulateKernel(float* y, const float* x, size_t n, bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (size_t i = tid; i < n4; i += stride) {
      const float4 a = y4[i];
      const float4 b = x4[i];
      y4[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) y[i] += x[i];
}

}  // namespace

cudaError_t LaunchFill(float* x, float value, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = Aligned16(x);
  FillKernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(x, value, n,
                                                                                   vec);
  return cudaGetLastError();
}

cudaError_t LaunchAdd(float* out, const float* a, const float* b, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = Aligned16(out) && Aligned16(a) && Aligned16(b);
  AddKernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(out, a, b, n,
                                                                                  vec);
  return cudaGetLastError();
}

cudaError_t LaunchAccumulate(float* y, const float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = Aligned16(y) && Aligned16(x);
  AccumulateKernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(y, x, n,
                                                                                         vec);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
