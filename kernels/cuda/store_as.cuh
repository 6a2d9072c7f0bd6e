// Loads and stores of fp32 values as the element type of a buffer: float, or __nv_bfloat16
// (stored rounded to nearest even, the rule of LaunchToBf16; loaded exactly), so that one kernel
// template reads or writes either.
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

__device__ __forceinline__ float LoadAs(const float* p) { return *p; }
__device__ __forceinline__ float LoadAs(const __nv_bfloat16* p) { return __bfloat162float(*p); }

// p[4q .. 4q+3] as floats; p must be 16-byte (float) or 8-byte (bf16) aligned.
__device__ __forceinline__ float4 LoadQuadAs(const float* p, size_t q) {
  return reinterpret_cast<const float4*>(p)[q];
}
__device__ __forceinline__ float4 LoadQuadAs(const __nv_bfloat16* p, size_t q) {
  const uint2 bits = reinterpret_cast<const uint2*>(p)[q];
  const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits.x));
  const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

}  // namespace spillway::kernels::cuda
