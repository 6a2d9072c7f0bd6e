// GELU, tanh approximation, in the cancellation-free form of kernels/cpu/gelu.cc: with
// u = sqrt(2/pi) (x + 0.044715 x^3) and e = exp(-2u), gelu(x) = x / (1 + e). Grid-stride loops
// over quads when every pointer allows (16-byte aligned fp32, 8-byte bf16), plus a scalar tail.
// The pre-activation and the backward's dout are read as float or bf16 (InT, DoutT) and the outputs
// are written as float or bf16 (OutT; store_as.cuh). dinp may alias dout (of its own type), so no
// __restrict__.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// exp(-2u), its argument clamped like the CPU's FastExp so that e stays finite.
__device__ __forceinline__ float ExpMinus2U(float x) {
  const float arg = -2.0f * kSqrt2OverPi * (x + kCubic * x * x * x);
  return expf(fminf(fmaxf(arg, -87.0f), 88.0f));
}

__device__ __forceinline__ float Gelu(float x) { return x / (1.0f + ExpMinus2U(x)); }

__device__ __forceinline__ float GeluGrad(float x, float d) {
  const float e = ExpMinus2U(x);
  const float sig = 1.0f / (1.0f + e);  // 0.5 (1 + tanh u)
  const float one_minus_sig = e * sig;
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
  return (sig + 2.0f * x * sig * one_minus_sig * du) * d;
}

template <typename InT, typename OutT>
__global__ void GeluForwardKernel(OutT* out, const InT* inp, size_t n, bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    for (size_t i = tid; i < n4; i += stride) {
      const float4 x = LoadQuadAs(inp, i);
      StoreQuadAs(out, i, make_float4(Gelu(x.x), Gelu(x.y), Gelu(x.z), Gelu(x.w)));
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) StoreAs(out + i, Gelu(LoadAs(inp + i)));
}

template <typename InT, typename DoutT, typename OutT>
__global__ void GeluBackwardKernel(OutT* dinp, const InT* inp, const DoutT* dout, size_t n,
                                   bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    for (size_t i = tid; i < n4; i += stride) {
      const float4 x = LoadQuadAs(inp, i);
      const float4 d = LoadQuadAs(dout, i);
      StoreQuadAs(dinp, i,
                  make_float4(GeluGrad(x.x, d.x), GeluGrad(x.y, d.y), GeluGrad(x.z, d.z),
                              GeluGrad(x.w, d.w)));
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) {
    StoreAs(dinp + i, GeluGrad(LoadAs(inp + i), LoadAs(dout + i)));
  }
}

template <typename InT, typename OutT>
cudaError_t LaunchForward(OutT* out, const InT* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = QuadAligned(out) && QuadAligned(inp);
  GeluForwardKernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(out, inp,
                                                                                          n, vec);
  return cudaGetLastError();
}

template <typename InT, typename DoutT, typename OutT>
cudaError_t LaunchBackward(OutT* dinp, const InT* inp, const DoutT* dout, size_t n,
                           cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = QuadAligned(dinp) && QuadAligned(inp) && QuadAligned(dout);
  GeluBackwardKernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(
      dinp, inp, dout, n, vec);
  return cudaGetLastError();
}

const __nv_bfloat16* Bf16(const uint16_t* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }

}  // namespace

cudaError_t LaunchGeluForward(float* out, const float* inp, size_t n, cudaStream_t stream) {
  return LaunchForward(out, inp, n, stream);
}

cudaError_t LaunchGeluForwardBf16(uint16_t* out, const uint16_t* inp, size_t n,
                                  cudaStream_t stream) {
  return LaunchForward(reinterpret_cast<__nv_bfloat16*>(out), Bf16(inp), n, stream);
}

cudaError_t LaunchGeluBackward(float* dinp, const float* inp, const float* dout, size_t n,
                               cudaStream_t stream) {
  return LaunchBackward(dinp, inp, dout, n, stream);
}

cudaError_t LaunchGeluBackwardBf16(uint16_t* dinp, const uint16_t* inp, const uint16_t* dout,
                                   size_t n, cudaStream_t stream) {
  return LaunchBackward(reinterpret_cast<__nv_bfloat16*>(dinp), Bf16(inp), Bf16(dout), n, stream);
}

}  // namespace spillway::kernels::cuda
