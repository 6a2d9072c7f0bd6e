// Softmax cross-entropy over the first V columns of logits (N, Vp), with the in-place gradient.
//
// One block per row. Pass 1: each thread keeps an online (max, sum of exp in double) over its
// strided columns; the block combines them in a fixed order (max, then a shuffle/shared-memory
// tree of the rescaled sums), so the result does not depend on timing. Pass 2 (dlogits_scale
// != 0) overwrites the row with (softmax - onehot) * scale and zeroes [V, Vp). The logits are
// float or bf16 (T: read widened, the gradient stored rounded; store_as.cuh).
//
// Rows of whole aligned octets (Vp % 8 == 0, 16-byte aligned; GPT-2's and Llama's padded
// vocabularies) take the octet kernel instead (CrossEntropyOctetKernel: max, then sum, then
// gradient, 1024 threads a row; thread t owns octets t, t + 1024, ... in every pass). Where two
// rows fit in a block's shared memory and give every thread an octet (bf16 rows of 8K to about
// 56K columns on sm_90), one block per SM works through every SM-count-th row with the next row
// loading (cp.async) while it works on this one; else where one row fits, a block per row keeps
// it there; so the logits cross DRAM once each way. Float and bf16 rows take the same octets in the
// same order, so CrossEntropyBf16 is CrossEntropy on the widened logits, bitwise. Other rows: the
// strided kernel, in quads where Vp % 4 == 0.
#include <cuda_bf16.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"
#include "kernels/cuda/ptx.cuh"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

constexpr int kThreads = 512;
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

// The block's max of the threads' maxima m and its sum of their sums s (each of exp(x - m))
// rescaled to that max: warp shuffles, then the warps in order through shared memory, so the
// result does not depend on timing; every thread gets both. The caller syncs before the next use.
template <int kBlockThreads>
__device__ __forceinline__ void BlockMaxAndSum(float m, double s, float& max, double& sum) {
  constexpr int kBlockWarps = kBlockThreads / 32;
  __shared__ float s_max[kBlockWarps];
  __shared__ double s_sum[kBlockWarps];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  float bm = m;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    bm = fmaxf(bm, __shfl_xor_sync(0xffffffffu, bm, offset));
  }
  if (lane == 0) s_max[warp] = bm;
  __syncthreads();
  max = s_max[0];
#pragma unroll
  for (int w = 1; w < kBlockWarps; ++w) max = fmaxf(max, s_max[w]);
  double bs = s == 0.0 ? 0.0 : s * static_cast<double>(expf(m - max));
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) bs += __shfl_xor_sync(0xffffffffu, bs, offset);
  if (lane == 0) s_sum[warp] = bs;
  __syncthreads();
  sum = s_sum[0];
#pragma unroll
  for (int w = 1; w < kBlockWarps; ++w) sum += s_sum[w];
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    CrossEntropyKernel(float* losses, T* logits, const int32_t* targets, int N, int V, int Vp,
                       float scale, bool vec) {
  __shared__ float s_target_logit;
  const int tid = threadIdx.x;
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

    float max;
    double sum;
    BlockMaxAndSum<kThreads>(m, s, max, sum);

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
    __syncthreads();  // BlockMaxAndSum's shared memory is reused by the next row
  }
}

// Eight consecutive logits as stored: two 16-byte vectors of fp32, one of bf16.
template <typename T>
struct Octet;
template <>
struct Octet<float> {
  float4 lo, hi;
};
template <>
struct Octet<__nv_bfloat16> {
  uint4 bits;
};

__device__ __forceinline__ void Widen(const Octet<float>& o, float (&v)[8]) {
  v[0] = o.lo.x, v[1] = o.lo.y, v[2] = o.lo.z, v[3] = o.lo.w;
  v[4] = o.hi.x, v[5] = o.hi.y, v[6] = o.hi.z, v[7] = o.hi.w;
}
__device__ __forceinline__ void Widen(const Octet<__nv_bfloat16>& o, float (&v)[8]) {
  const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&o.bits);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 f = __bfloat1622float2(pairs[k]);
    v[2 * k] = f.x;
    v[2 * k + 1] = f.y;
  }
}
__device__ __forceinline__ void Narrow(const float (&v)[8], Octet<float>& o) {
  o.lo = make_float4(v[0], v[1], v[2], v[3]);
  o.hi = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void Narrow(const float (&v)[8], Octet<__nv_bfloat16>& o) {
  auto* pairs = reinterpret_cast<__nv_bfloat162*>(&o.bits);
#pragma unroll
  for (int k = 0; k < 4; ++k) pairs[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
}

constexpr int kOctetThreads = 1024;
constexpr int kOctetUnroll = 4;  // octets a thread loads before it adds them (pass 1)

// Stages row `row`'s octets that thread tid works on (tid, tid + kOctetThreads, ...) into `to`.
template <typename T>
__device__ __forceinline__ void StageOctets(Octet<T>* to, const Octet<T>* row, int G) {
  constexpr int kChunks = sizeof(Octet<T>) / 16;
  for (int g = threadIdx.x; g < G; g += kOctetThreads) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      CopyAsync16(reinterpret_cast<uint4*>(to + g) + c,
                  reinterpret_cast<const uint4*>(row + g) + c);
    }
  }
}

// The octets' three passes over a row: 1. the thread's max; 2. the thread's sum of
// exp(x - max), in float; the block's max M and its sum S of the threads' sums rescaled to M, in
// double, in a fixed order; 3. the gradient exp(x - M) / S * scale - scale at the target.
// Exponentials are 2^(x log2(e) - M log2(e)). Thread t owns octets t, t + kOctetThreads, ... in
// every pass; only octets past V / 8 are checked against V. kBuffers rows of shared memory
// (dynamic, Vp * sizeof(T) bytes each) stage the logits, so that they cross DRAM once each way:
// 0, none (the passes read memory); 1, the row being worked on; 2, that row and the block's next
// one, loaded (cp.async) while the block works on this one. A thread reads only the octets it
// staged, so staging needs no barrier.
template <typename T, int kBuffers>
__global__ void __launch_bounds__(kOctetThreads)
    CrossEntropyOctetKernel(float* losses, T* logits, const int32_t* targets, int N, int V, int Vp,
                            float scale) {
  extern __shared__ uint4 staged_words[];
  __shared__ float s_target_logit;
  constexpr float kLog2e = 1.4426950408889634f;
  const int tid = threadIdx.x;
  const int G = Vp / 8;
  const int full = V / 8;  // octets wholly inside the first V columns
  auto row_octets = [&](int row) {
    return reinterpret_cast<Octet<T>*>(logits + static_cast<size_t>(row) * Vp);
  };
  auto buffer = [&](int i) {
    return reinterpret_cast<Octet<T>*>(staged_words) + (kBuffers == 2 ? (i & 1) * G : 0);
  };
  if (kBuffers == 2 && blockIdx.x < N) {
    StageOctets(buffer(0), row_octets(blockIdx.x), G);
    CommitCopies();
  }
  int i = 0;                                                    // the block's rows so far
  for (int row = blockIdx.x; row < N; row += gridDim.x, ++i) {  // block-uniform loop
    Octet<T>* x = row_octets(row);
    const int target = targets[row];
    if constexpr (kBuffers == 2) {
      if (row + gridDim.x < N) StageOctets(buffer(i + 1), row_octets(row + gridDim.x), G);
      CommitCopies();
      WaitCopies<1>();  // this row's
    } else if constexpr (kBuffers == 1) {
      if (target >= 0) StageOctets(buffer(i), x, G);
      CommitCopies();
      WaitCopies<0>();
    }
    if (target < 0) {
      if (tid == 0) losses[row] = 0.0f;
      if (scale != 0.0f) {
        const float zeros[8] = {};
        Octet<T> zero;
        Narrow(zeros, zero);
        for (int g = tid; g < G; g += kOctetThreads) x[g] = zero;
      }
      continue;
    }
    if (tid == 0) s_target_logit = LoadAs(logits + static_cast<size_t>(row) * Vp + target);
    const Octet<T>* in = kBuffers > 0 ? buffer(i) : x;

    float m = -INFINITY;  // 1.
    for (int g0 = tid; g0 < G; g0 += kOctetThreads * kOctetUnroll) {
      Octet<T> o[kOctetUnroll];
#pragma unroll
      for (int u = 0; u < kOctetUnroll; ++u) {
        const int g = g0 + u * kOctetThreads;
        if (g < G) o[u] = in[g];
      }
#pragma unroll
      for (int u = 0; u < kOctetUnroll; ++u) {
        const int g = g0 + u * kOctetThreads;
        if (g >= G) break;
        float v[8];
        Widen(o[u], v);
#pragma unroll
        for (int k = 0; k < 8; ++k) m = g < full || 8 * g + k < V ? fmaxf(m, v[k]) : m;
      }
    }
    float s = 0.0f;  // 2.
    if (m != -INFINITY) {
      const float m2 = m * kLog2e;
      for (int g = tid; g < G; g += kOctetThreads) {
        float v[8];
        Widen(in[g], v);
        if (g < full) {
#pragma unroll
          for (int k = 0; k < 8; ++k) s += Exp2(fmaf(v[k], kLog2e, -m2));
        } else {
#pragma unroll
          for (int k = 0; k < 8; ++k) s += 8 * g + k < V ? Exp2(fmaf(v[k], kLog2e, -m2)) : 0.0f;
        }
      }
    }

    float max;
    double sum;
    BlockMaxAndSum<kOctetThreads>(m, static_cast<double>(s), max, sum);

    if (tid == 0) {
      losses[row] = static_cast<float>(log(sum) + static_cast<double>(max) -
                                       static_cast<double>(s_target_logit));
    }

    if (scale != 0.0f) {  // 3.
      const float factor = static_cast<float>(static_cast<double>(scale) / sum);
      const float max2 = max * kLog2e;
      for (int g = tid; g < G; g += kOctetThreads) {
        float v[8];
        Widen(in[g], v);
        if (g < full) {
#pragma unroll
          for (int k = 0; k < 8; ++k) v[k] = Exp2(fmaf(v[k], kLog2e, -max2)) * factor;
        } else {
#pragma unroll
          for (int k = 0; k < 8; ++k) {
            v[k] = 8 * g + k < V ? Exp2(fmaf(v[k], kLog2e, -max2)) * factor : 0.0f;
          }
        }
        if (g == target / 8) {
#pragma unroll
          for (int k = 0; k < 8; ++k) v[k] -= 8 * g + k == target ? scale : 0.0f;
        }
        Octet<T> out;
        Narrow(v, out);
        x[g] = out;
      }
    }
    __syncthreads();  // BlockMaxAndSum's shared memory is reused by the next row
  }
}

template <typename T, int kBuffers>
cudaError_t LaunchOctets(float* losses, T* logits, const int32_t* targets, int N, int V, int Vp,
                         float dlogits_scale, int blocks, cudaStream_t stream) {
  auto* kernel = CrossEntropyOctetKernel<T, kBuffers>;
  const int bytes = kBuffers * Vp * static_cast<int>(sizeof(T));
  if (bytes > 0) {
    const cudaError_t set =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (set != cudaSuccess) return set;
  }
  kernel<<<blocks, kOctetThreads, bytes, stream>>>(losses, logits, targets, N, V, Vp,
                                                   dlogits_scale);
  return cudaGetLastError();
}

template <typename T>
cudaError_t Launch(float* losses, T* logits, const int32_t* targets, int N, int V, int Vp,
                   float dlogits_scale, cudaStream_t stream) {
  if (N <= 0) return cudaSuccess;
  const int blocks = N < kMaxBlocks ? N : kMaxBlocks;
  if (Vp % 8 == 0 && Aligned16(logits)) {
    constexpr size_t kStaticShared = 1024;  // the kernel's own arrays, rounded up
    const size_t row_bytes = static_cast<size_t>(Vp) * sizeof(T);
    // The shared memory one block may opt into (0 where unknown: the unstaged kernel).
    const size_t max_shared =
        static_cast<size_t>(CurrentDeviceAttribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>());
    // Double-buffered: one block per SM, each taking every SM-count-th row; for rows with an
    // octet for every thread (shorter ones leave most of a block idle: a block per row instead).
    const int sms = MultiprocessorCount();
    if (sms > 0 && Vp / 8 >= kOctetThreads && 2 * row_bytes + kStaticShared <= max_shared) {
      return LaunchOctets<T, 2>(losses, logits, targets, N, V, Vp, dlogits_scale, N < sms ? N : sms,
                                stream);
    }
    if (row_bytes + kStaticShared <= max_shared) {
      return LaunchOctets<T, 1>(losses, logits, targets, N, V, Vp, dlogits_scale, blocks, stream);
    }
    return LaunchOctets<T, 0>(losses, logits, targets, N, V, Vp, dlogits_scale, blocks, stream);
  }
  const bool vec = Vp % 4 == 0 && reinterpret_cast<uintptr_t>(logits) % (4 * sizeof(T)) == 0;
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
