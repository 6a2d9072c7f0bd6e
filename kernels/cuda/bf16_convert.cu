// fp32 -> bf16 conversion, round to nearest even (the CPU backend's kernels/cpu/round16.h rule),
// for the bf16 GEMM operands (cublaslt_matmul.cc). A grid-stride loop over float4 quads when
// both pointers allow, plus a scalar tail.
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

__global__ void ToBf16Kernel(__nv_bfloat16* __restrict__ out, const float* __restrict__ in,
                             size_t n, bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    const float4* in4 = reinterpret_cast<const float4*>(in);
    __nv_bfloat162* out2 = reinterpret_cast<__nv_bfloat162*>(out);
    for (size_t i = tid; i < n4; i += stride) {
      const float4 x = in4[i];
      out2[2 * i] = __floats2bfloat162_rn(x.x, x.y);
      out2[2 * i + 1] = __floats2bfloat162_rn(x.z, x.w);
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) out[i] = __float2bfloat16_rn(in[i]);
}

}  // namespace

cudaError_t LaunchToBf16(uint16_t* out, const float* in, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = Aligned16(in) && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  ToBf16Kernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(
      reinterpret_cast<__nv_bfloat16*>(out), in, n, vec);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
