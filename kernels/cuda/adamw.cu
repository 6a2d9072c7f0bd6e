// One AdamW step (torch.optim.AdamW order, bias correction), elementwise over the parts of one
// launch (a Unit's tensors): a grid-stride loop over quads of each part, float4 where every
// pointer is 16-byte aligned there, scalar otherwise and in a part's last partial quad. The bias
// corrections are computed on the host in double, and every device operation is an explicitly
// rounded intrinsic in the order of kernels/cpu/adamw.cc (nvcc would otherwise fuse multiplies
// and adds), so the result is bitwise equal to the CPU kernels.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

struct Step {
  float lr, beta1, beta2, eps, grad_scale, one_minus_beta1, one_minus_beta2, bc1, bc2;
};

// The parts of one launch: part k is elements [begin[k], end[k]) of all four arrays, with the
// factor decay[k] = 1 - lr * weight_decay; its quads (4 elements, the last one partial) are
// numbered from first_quad[k]. vec[k]: every fp32 array is 16-byte aligned at begin[k] (float4),
// and the bf16 copy, if any, 8-byte aligned.
struct Parts {
  int count;
  size_t begin[kAdamWPartsMax], end[kAdamWPartsMax], first_quad[kAdamWPartsMax + 1];
  float decay[kAdamWPartsMax];
  bool vec[kAdamWPartsMax];
};

// Updates m and v in place and returns the new parameter.
__device__ __forceinline__ float Update(float param, float grad, float& m, float& v, const Step& s,
                                        float decay) {
  const float g = __fmul_rn(grad, s.grad_scale);
  m = __fadd_rn(__fmul_rn(s.beta1, m), __fmul_rn(s.one_minus_beta1, g));
  v = __fadd_rn(__fmul_rn(s.beta2, v), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
  const float denom = __fadd_rn(__fsqrt_rn(__fdiv_rn(v, s.bc2)), s.eps);
  return __fsub_rn(__fmul_rn(param, decay), __fdiv_rn(__fmul_rn(s.lr, __fdiv_rn(m, s.bc1)), denom));
}

// A grid-stride loop over the quads of all parts; copy (bf16, laid out as param) may be null.
__global__ void AdamWKernel(float* param, __nv_bfloat16* copy, const float* grad, float* m,
                            float* v, Parts parts, Step s) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t quads = parts.first_quad[parts.count];
  int k = 0;
  for (size_t q = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < quads;
       q += stride) {
    while (q >= parts.first_quad[k + 1]) ++k;  // q only grows
    const size_t i = parts.begin[k] + 4 * (q - parts.first_quad[k]);
    const size_t end = parts.end[k];
    const float decay = parts.decay[k];
    if (parts.vec[k] && i + 4 <= end) {
      float4 p = *reinterpret_cast<float4*>(param + i);
      const float4 g = *reinterpret_cast<const float4*>(grad + i);
      float4 mi = *reinterpret_cast<float4*>(m + i);
      float4 vi = *reinterpret_cast<float4*>(v + i);
      p.x = Update(p.x, g.x, mi.x, vi.x, s, decay);
      p.y = Update(p.y, g.y, mi.y, vi.y, s, decay);
      p.z = Update(p.z, g.z, mi.z, vi.z, s, decay);
      p.w = Update(p.w, g.w, mi.w, vi.w, s, decay);
      *reinterpret_cast<float4*>(param + i) = p;
      if (copy != nullptr) StoreQuadAs(copy + i, 0, p);
      *reinterpret_cast<float4*>(m + i) = mi;
      *reinterpret_cast<float4*>(v + i) = vi;
      continue;
    }
    for (size_t j = i; j < i + 4 && j < end; ++j) {
      float mj = m[j];
      float vj = v[j];
      param[j] = Update(param[j], grad[j], mj, vj, s, decay);
      if (copy != nullptr) StoreAs(copy + j, param[j]);
      m[j] = mj;
      v[j] = vj;
    }
  }
}

}  // namespace

cudaError_t LaunchAdamWParts(float* param, uint16_t* param_bf16, const float* grad, float* m,
                             float* v, const size_t* ranges, const float* weight_decays,
                             size_t count, float lr, float beta1, float beta2, float eps,
                             int64_t step, float grad_scale, cudaStream_t stream) {
  if (count > kAdamWPartsMax) return cudaErrorInvalidValue;
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
  Parts parts{};
  parts.count = static_cast<int>(count);
  for (size_t k = 0; k < count; ++k) {
    const size_t b = ranges[2 * k], e = ranges[2 * k + 1];
    parts.begin[k] = b;
    parts.end[k] = e;
    parts.first_quad[k + 1] = parts.first_quad[k] + (e - b + 3) / 4;
    parts.decay[k] = 1.0f - lr * weight_decays[k];
    parts.vec[k] = Aligned16(param + b) && Aligned16(grad + b) && Aligned16(m + b) &&
                   Aligned16(v + b) &&
                   (param_bf16 == nullptr || reinterpret_cast<uintptr_t>(param_bf16 + b) % 8 == 0);
  }
  const size_t quads = parts.first_quad[count];
  if (quads == 0) return cudaSuccess;
  AdamWKernel<<<GridStrideBlocks(quads), kGridStrideThreads, 0, stream>>>(
      param, reinterpret_cast<__nv_bfloat16*>(param_bf16), grad, m, v, parts, s);
  return cudaGetLastError();
}

cudaError_t LaunchAdamW(float* param, const float* grad, float* m, float* v, size_t n, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step,
                        float grad_scale, cudaStream_t stream) {
  const size_t range[2] = {0, n};
  return LaunchAdamWParts(param, nullptr, grad, m, v, range, &weight_decay, 1, lr, beta1, beta2,
                          eps, step, grad_scale, stream);
}

}  // namespace spillway::kernels::cuda
