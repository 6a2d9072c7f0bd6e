// Softmax cross-entropy over the first V columns of logits (N, Vp), with the in-place gradient.
//
// One block per row. Pass 1: each thread keeps an online (max, sum of exp in double) over its
// strided columns; the block combines them in a fixed order (max, then a shuffle/shared-memory
// tree of the rescaled sums), so the result does not depend on timing. Pass 2 (dlogits_scale
// != 0) overwrites the row with (softmax - onehot) * scale and zeroes [V, Vp). Rows are read in
// quads when Vp % 4 == 0 and logits is aligned for them. The logits are float or bf16 (T: read
// widened, the gradient stored rounded; store_as.cuh).
#include <cuda_bf16.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/launchers.h"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxBlocks = 1 << 20;

__device__ __forceinline__ void OnlineAdd(float v, float& m, double& s) {
  if (v > m) {
    s = s * static_cast<double>(expf(m - v)) + 1.0;
    m = v;
  } else {
    s += static_cast<double>(expf(v - m));
  }
}

__device__ __forceinline__ float Grad(float v, int i, int V, int target, float max, float factor,
                                      float scale) {
  if (i >= V) return 0.0f;
  float g = expf(v - max) * factor;
  if (i == target) g -= scale;
  return g;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    CrossEntropyKernel(float* losses, T* logits, const int32_t* targets, int N, int V, int Vp,
                       float scale, bool vec) {
  __shared__ float s_max[kWarps];
  __shared__ double s_sum[kWarps];
  __shared__ float s_target_logit;
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  for (int row = blockIdx.x; row < N; row += gridDim.x) {  // block-uniform loop
    T* x = logits + static_cast<size_t>(row) * Vp;
    const int target = targets[row];
    if (target < 0) {
      if (tid == 0) losses[row] = 0.0f;
      if (scale != 0.0f) {
        for (int i = tid; i < Vp; i += kThreads) StoreAs(x + i, 0.0f);
      }
      continue;
    }
    if (tid == 0) s_target_logit = LoadAs(x + target);  // read before pass 2 overwrites it

    // Pass 1: per-thread online max and sum of exp.
    float m = -INFINITY;
    double s = 0.0;
    int tail_begin = 0;
    if (vec) {
      const int V4 = V / 4;
      for (int q = tid; q < V4; q += kThreads) {
        const float4 v = LoadQuadAs(x, q);
        OnlineAdd(v.x, m, s);
        OnlineAdd(v.y, m, s);
        OnlineAdd(v.z, m, s);
        OnlineAdd(v.w, m, s);
      }
      tail_begin = V4 * 4;
    }
    for (int i = tail_begin + tid; i < V; i += kThreads) OnlineAdd(LoadAs(x + i), m, s);

    // Block max (order-independent), then the rescaled sums in a fixed tree.
    float bm = m;
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      bm = fmaxf(bm, __shfl_xor_sync(0xffffffffu, bm, offset));
    }
    if (lane == 0) s_max[warp] = bm;
    __syncthreads();
    float max = s_max[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) max = fmaxf(max, s_max[w]);
    double bs = s == 0.0 ? 0.0 : s * static_cast<double>(expf(m - max));
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) bs += __shfl_xor_sync(0xffffffffu, bs, offset);
    if (lane == 0) s_sum[warp] = bs;
    __syncthreads();
    double sum = s_sum[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) sum += s_sum[w];

    if (tid == 0) {
      losses[row] = static_cast<float>(log(sum) + static_cast<double>(max) -
                                       static_cast<double>(s_target_logit));
    }

    // Pass 2: the gradient, in place, from the row's end: its last-read part is likeliest in L2.
    if (scale != 0.0f) {
      const float factor = static_cast<float>(static_cast<double>(scale) / sum);
      int begin = 0;
      if (vec) {
        const int Vp4 = Vp / 4;
        for (int q = Vp4 - 1 - tid; q >= 0; q -= kThreads) {
          const int i = 4 * q;
          float4 v = LoadQuadAs(x, q);
          v.x = Grad(v.x, i, V, target, max, factor, scale);
          v.y = Grad(v.y, i + 1, V, target, max, factor, scale);
          v.z = Grad(v.z, i + 2, V, target, max, factor, scale);
          v.w = Grad(v.w, i + 3, V, target, max, factor, scale);
          StoreQuadAs(x, q, v);
        }
        begin = Vp4 * 4;
      }
      for (int i = begin + tid; i < Vp; i += kThreads) {
        StoreAs(x + i, Grad(LoadAs(x + i), i, V, target, max, factor, scale));
      }
    }
    __syncthreads();  // shared memory is reused by the next row
  }
}

template <typename T>
cudaError_t Launch(float* losses, T* logits, const int32_t* targets, int N, int V, int Vp,
                   float dlogits_scale, cudaStream_t stream) {
  if (N <= 0) return cudaSuccess;
  const bool vec = Vp % 4 == 0 && reinterpret_cast<uintptr_t>(logits) % (4 * sizeof(T)) == 0;
  const int blocks = N < kMaxBlocks ? N : kMaxBlocks;
  CrossEntropyKernel<<<blocks, kThreads, 0, stream>>>(losses, logits, targets, N, V, Vp,
                                                      dlogits_scale, vec);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchCrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V,
                               int Vp, float dlogits_scale, cudaStream_t stream) {
  return Launch(losses, logits, targets, N, V, Vp, dlogits_scale, stream);
}

cudaError_t LaunchCrossEntropyBf16(float* losses, uint16_t* logits, const int32_t* targets, int N,
                                   int V, int Vp, float dlogits_scale, cudaStream_t stream) {
  return Launch(losses, reinterpret_cast<__nv_bfloat16*>(logits), targets, N, V, Vp, dlogits_scale,
                stream);
}

}  // namespace spillway::kernels::cuda
