// One AdamW step (torch.optim.AdamW order, bias correction), elementwise: a grid-stride loop
// over float4 quads when every pointer is 16-byte aligned, plus a scalar tail. The bias
// corrections are computed on the host in double, and every device operation is an explicitly
// rounded intrinsic in the order of kernels/cpu/adamw.cc (nvcc would otherwise fuse multiplies
// and adds), so the result is bitwise equal to the CPU kernels.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

struct Step {
  float lr, beta1, beta2, eps, grad_scale, one_minus_beta1, one_minus_beta2, bc1, bc2, decay;
};

// Updates m and v in place and returns the new parameter.
__device__ __forceinline__ float Update(float param, float grad, float& m, float& v,
                                        const Step& s) {
  const float g = __fmul_rn(grad, s.grad_scale);
  m = __fadd_rn(__fmul_rn(s.beta1, m), __fmul_rn(s.one_minus_beta1, g));
  v = __fadd_rn(__fmul_rn(s.beta2, v), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
  const float denom = __fadd_rn(__fsqrt_rn(__fdiv_rn(v, s.bc2)), s.eps);
  return __fsub_rn(__fmul_rn(param, s.decay),
                   __fdiv_rn(__fmul_rn(s.lr, __fdiv_rn(m, s.bc1)), denom));
}

__global__ void AdamWKernel(float* param, const float* grad, float* m, float* v, size_t n, Step s,
                            bool vec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t start = 0;
  if (vec) {
    const size_t n4 = n / 4;
    float4* p4 = reinterpret_cast<float4*>(param);
    const float4* g4 = reinterpret_cast<const float4*>(grad);
    float4* m4 = reinterpret_cast<float4*>(m);
    float4* v4 = reinterpret_cast<float4*>(v);
    for (size_t i = tid; i < n4; i += stride) {
      float4 p = p4[i];
      const float4 g = g4[i];
      float4 mi = m4[i];
      float4 vi = v4[i];
      p.x = Update(p.x, g.x, mi.x, vi.x, s);
      p.y = Update(p.y, g.y, mi.y, vi.y, s);
      p.z = Update(p.z, g.z, mi.z, vi.z, s);
      p.w = Update(p.w, g.w, mi.w, vi.w, s);
      p4[i] = p;
      m4[i] = mi;
      v4[i] = vi;
    }
    start = n4 * 4;
  }
  for (size_t i = start + tid; i < n; i += stride) {
    float mi = m[i];
    float vi = v[i];
    param[i] = Update(param[i], grad[i], mi, vi, s);
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

cudaError_t LaunchAdamW(float* param, const float* grad, float* m, float* v, size_t n, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step,
                        float grad_scale, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  Step s;
  s.lr = lr;
  s.beta1 = beta1;
  s.beta2 = beta2;
  s.eps = eps;
  s.grad_scale = grad_scale;
  s.one_minus_beta1 = 1.0f - beta1;
  s.one_minus_beta2 = 1.0f - beta2;
  s.bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), step));
  s.bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), step));
  s.decay = 1.0f - lr * weight_decay;
  const bool vec = Aligned16(param) && Aligned16(grad) && Aligned16(m) && Aligned16(v);
  AdamWKernel<<<GridStrideBlocks(vec ? n / 4 : n), kGridStrideThreads, 0, stream>>>(param, grad, m,
                                                                                    v, n, s, vec);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
