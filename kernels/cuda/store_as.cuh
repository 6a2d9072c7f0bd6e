// Stores of fp32 results as the element type of the output buffer: float, or __nv_bfloat16
// (rounded to nearest even, the rule of LaunchToBf16), so that one kernel template writes either.
#pragma once

#include <cuda_bf16.h>

#include <cstddef>

namespace spillway::kernels::cuda {

__device__ __forceinline__ void StoreAs(float* p, float v) { *p = v; }
__device__ __forceinline__ void StoreAs(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// p[4q .. 4q+3] = v; p must be 16-byte (float) or 8-byte (bf16) aligned.
__device__ __forceinline__ void StoreQuadAs(float* p, size_t q, float4 v) {
  reinterpret_cast<float4*>(p)[q] = v;
}
__device__ __forceinline__ void StoreQuadAs(__nv_bfloat16* p, size_t q, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y);
  const __nv_bfloat162 hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 bits;
  bits.x = *reinterpret_cast<const unsigned*>(&lo);
  bits.y = *reinterpret_cast<const unsigned*>(&hi);
  reinterpret_cast<uint2*>(p)[q] = bits;
}

}  // namespace spillway::kernels::cuda
