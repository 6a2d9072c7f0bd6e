// fp32 -> 16-bit conversions, round to nearest even (the CPU backend's kernels/cpu/round16.h
// rule): bf16 for the bf16 GEMM operands (cublaslt_matmul.cc), bf16 or fp16 for the tensor-core
// attention's operands (attention_tc.cu); and bf16 -> fp32 (exact) for the GEMMs that cannot read
// a bf16 input. Grid-stride loops over quads when both pointers allow, plus a scalar tail.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

__device__ __forceinline__ __nv_bfloat162 Pair(float a, float b, __nv_bfloat162*) {
  return __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ __half2 Pair(float a, float b, __half2*) {
  return __floats2half2_rn(a, b);
}
__device__ __forceinline__ __nv_bfloat16 One(float a, __nv_bfloat16*) {
  return __float2bfloat16_rn(a);
}
__device__ __forceinline__ __half One(float a, __half*) { return __float2half_rn(a); }

// T16 is __nv_bfloat16 or __half; T162 its pair type.
template <typename T16, typename T162>
__global__ void To16Kernel(T16* __restrict__ out, const float* __restrict__ in, size_t n,
                           bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    const float4* in4 = reinterpret_cast<const float4*>(in);
    T162* out2 = reinterpret_cast<T162*>(out);
    for (size_t i = tid; i < n4; i += stride) {
      const float4 x = in4[i];
      out2[2 * i] = Pair(x.x, x.y, out2);
      out2[2 * i + 1] = Pair(x.z, x.w, out2);
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) out[i] = One(in[i], out);
}

template <typename T16, typename T162>
cudaError_t LaunchTo16(uint16_t* out, const float* in, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = Aligned16(in) && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  To16Kernel<T16, T162><<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(
      reinterpret_cast<T16*>(out), in, n, vec);
  return cudaGetLastError();
}

__global__ void Bf16ToFloatKernel(float* __restrict__ out, const __nv_bfloat16* __restrict__ in,
                                  size_t n, bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    const auto* in2 = reinterpret_cast<const __nv_bfloat162*>(in);
    float4* out4 = reinterpret_cast<float4*>(out);
    for (size_t i = tid; i < n4; i += stride) {
      const float2 lo = __bfloat1622float2(in2[2 * i]);
      const float2 hi = __bfloat1622float2(in2[2 * i + 1]);
      out4[i] = make_float4(lo.x, lo.y, hi.x, hi.y);
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) out[i] = __bfloat162float(in[i]);
}

}  // namespace

cudaError_t LaunchBf16ToFloat(float* out, const uint16_t* in, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = Aligned16(out) && reinterpret_cast<uintptr_t>(in) % 8 == 0;
  Bf16ToFloatKernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(
      out, reinterpret_cast<const __nv_bfloat16*>(in), n, vec);
  return cudaGetLastError();
}

cudaError_t LaunchToBf16(uint16_t* out, const float* in, size_t n, cudaStream_t stream) {
  return LaunchTo16<__nv_bfloat16, __nv_bfloat162>(out, in, n, stream);
}

cudaError_t LaunchToFp16(uint16_t* out, const float* in, size_t n, cudaStream_t stream) {
  return LaunchTo16<__half, __half2>(out, in, n, stream);
}

}  // namespace spillway::kernels::cuda
