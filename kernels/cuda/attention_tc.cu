// Causal (grouped-query) attention on tensor cores, for the mixed-precision matmul setting
// (Ops::SetMatmulPrecision bf16 / fp16) and head size 64: the products q k^T, p v, dout v^T,
// ds k, p^T dout and ds^T q take their operands rounded to 16 bits (WMMA 16x16x16 fragments)
// and accumulate in fp32; the softmax, its statistics and every buffer stay fp32, with the
// layouts and the contract of kernels/ops.h (no (T,T) matrix is stored; lse saved).
//
// Tiles of 64 query rows and 64 key rows, 4 warps per block, warp w owning rows [16w, 16w+16)
// of the block's tile; fixed loop orders and no atomics, so results are bitwise reproducible.
//  - Forward: a block per (batch, head, query tile); online softmax over the key tiles up to the
//    diagonal, the output accumulator kept in shared memory and rescaled per row.
//  - Backward, kernel 1: a block per (batch, head, query tile): D_i = dout_i . out_i (to scratch),
//    dq = scale * sum_j ds_ij k_j with p and ds recomputed from lse.
//  - Backward, kernel 2: a block per (batch, kv head, key tile): dk, dv summed over the kv head's
//    query heads in ascending order and over the query tiles from the diagonal on.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kHs = 64;    // head size handled here
constexpr int kTile = 64;  // query and key rows per tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kFrag = 16;
constexpr unsigned kFullMask = 0xffffffffu;

template <typename T16>
__device__ __forceinline__ T16 To16(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 To16<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half To16<__half>(float x) {
  return __float2half_rn(x);
}

__device__ __forceinline__ float WarpSum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}
__device__ __forceinline__ float WarpMax(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}

// dst (kTile, kHs) 16-bit = rows [row0, row0 + kTile) of src (row stride `stride`); rows >= T
// are zero. Called by the whole block.
template <typename T16>
__device__ __forceinline__ void LoadTile16(T16* dst, const float* src, size_t stride, int row0,
                                           int T) {
  for (int idx = threadIdx.x; idx < kTile * kHs / 4; idx += kThreads) {
    const int r = idx / (kHs / 4);
    const int d = (idx % (kHs / 4)) * 4;
    const int t = row0 + r;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (t < T) {
      const float* p = src + static_cast<size_t>(t) * stride + d;
      // One 16-byte load where the row allows (the model's buffers: always).
      v = reinterpret_cast<uintptr_t>(p) % 16 == 0 ? *reinterpret_cast<const float4*>(p)
                                                   : make_float4(p[0], p[1], p[2], p[3]);
    }
    T16* o = dst + r * kHs + d;
    o[0] = To16<T16>(v.x);
    o[1] = To16<T16>(v.y);
    o[2] = To16<T16>(v.z);
    o[3] = To16<T16>(v.w);
  }
}

using AccFrag = wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float>;
template <typename T16>
using RowA = wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, T16, wmma::row_major>;
template <typename T16>
using RowB = wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, T16, wmma::row_major>;
template <typename T16>
using ColB = wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, T16, wmma::col_major>;

// The warp's 16 rows of out (16, 64, fp32, row stride 64) = a (16 rows at `a`, 64 wide, row
// stride 64) times b^T, b being 64 rows of 64 (row stride 64): out[r][n] = sum_k a[r][k] b[n][k].
template <typename T16>
__device__ __forceinline__ void WarpABt(float* out, const T16* a, const T16* b) {
#pragma unroll
  for (int n = 0; n < kTile / kFrag; ++n) {
    AccFrag acc;
    wmma::fill_fragment(acc, 0.0f);
#pragma unroll
    for (int k = 0; k < kHs / kFrag; ++k) {
      RowA<T16> fa;
      ColB<T16> fb;
      wmma::load_matrix_sync(fa, a + k * kFrag, kHs);
      wmma::load_matrix_sync(fb, b + n * kFrag * kHs + k * kFrag, kHs);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(out + n * kFrag, acc, kTile, wmma::mem_row_major);
  }
}

// acc (16, 64, fp32, row stride 64) += a (16 rows, 64 wide, row stride 64) times b (64 x 64,
// row-major, row stride 64): acc[r][n] += sum_k a[r][k] b[k][n].
template <typename T16>
__device__ __forceinline__ void WarpAccumulateAB(float* acc_s, const T16* a, const T16* b) {
#pragma unroll
  for (int n = 0; n < kHs / kFrag; ++n) {
    AccFrag acc;
    wmma::load_matrix_sync(acc, acc_s + n * kFrag, kHs, wmma::mem_row_major);
#pragma unroll
    for (int k = 0; k < kTile / kFrag; ++k) {
      RowA<T16> fa;
      RowB<T16> fb;
      wmma::load_matrix_sync(fa, a + k * kFrag, kTile);
      wmma::load_matrix_sync(fb, b + k * kFrag * kHs + n * kFrag, kHs);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(acc_s + n * kFrag, acc, kHs, wmma::mem_row_major);
  }
}

struct Geometry {
  size_t C3;  // qkv row width
  const float* q;
  const float* k;
  const float* v;
};

__device__ __forceinline__ Geometry Locate(const float* qkv, int b, int h, int g, int T, int NH,
                                           int NKV) {
  Geometry geo;
  geo.C3 = static_cast<size_t>(NH + 2 * NKV) * kHs;
  const float* row = qkv + static_cast<size_t>(b) * T * geo.C3;
  geo.q = row + static_cast<size_t>(h) * kHs;
  geo.k = row + static_cast<size_t>(NH + g) * kHs;
  geo.v = row + static_cast<size_t>(NH + NKV + g) * kHs;
  return geo;
}

constexpr size_t kTile16Bytes = kTile * kHs * 2;
constexpr size_t kTile32Bytes = kTile * kHs * 4;

// ---------------------------------------------------------------------------------------------
// Forward. smem: q, k, v, p (16-bit), s, o (fp32).
constexpr size_t kForwardSmem = 4 * kTile16Bytes + 2 * kTile32Bytes;

template <typename T16>
__global__ void __launch_bounds__(kThreads)
    TcForwardKernel(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv,
                    int T, int NH, int NKV, int tiles, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  T16* q_s = reinterpret_cast<T16*>(smem);
  T16* k_s = q_s + kTile * kHs;
  T16* v_s = k_s + kTile * kHs;
  T16* p_s = v_s + kTile * kHs;
  float* s_s = reinterpret_cast<float*>(p_s + kTile * kHs);
  float* o_s = s_s + kTile * kTile;

  const int heads = gridDim.x / tiles;
  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH, h = bh % NH;
  const Geometry geo = Locate(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const int t0 = tile * kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wrow = warp * kFrag;

  LoadTile16(q_s, geo.q, geo.C3, t0, T);
  for (int i = lane; i < kFrag * kHs; i += 32) o_s[wrow * kHs + i] = 0.0f;
  float m[kFrag], l[kFrag];
#pragma unroll
  for (int r = 0; r < kFrag; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  for (int s0 = 0; s0 <= t0 && s0 < T; s0 += kTile) {
    __syncthreads();
    LoadTile16(k_s, geo.k, geo.C3, s0, T);
    LoadTile16(v_s, geo.v, geo.C3, s0, T);
    __syncthreads();
    WarpABt(s_s + wrow * kTile, q_s + wrow * kHs, k_s);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < kFrag; ++r) {
      const int t = t0 + wrow + r;
      float x[2], p[2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int c = lane + 32 * half;
        const int s = s0 + c;
        x[half] = t < T && s <= t ? s_s[(wrow + r) * kTile + c] * scale : -INFINITY;
      }
      const float m_new = fmaxf(m[r], WarpMax(fmaxf(x[0], x[1])));
      const float corr = m_new == -INFINITY ? 1.0f : expf(m[r] - m_new);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int c = lane + 32 * half;
        p[half] = x[half] == -INFINITY ? 0.0f : expf(x[half] - m_new);
        p_s[(wrow + r) * kTile + c] = To16<T16>(p[half]);
        o_s[(wrow + r) * kHs + c] *= corr;
      }
      l[r] = l[r] * corr + WarpSum(p[0] + p[1]);
      m[r] = m_new;
    }
    __syncwarp();
    WarpAccumulateAB(o_s + wrow * kHs, p_s + wrow * kTile, v_s);
    __syncwarp();
  }
  const size_t C = static_cast<size_t>(NH) * kHs;
#pragma unroll
  for (int r = 0; r < kFrag; ++r) {
    const int t = t0 + wrow + r;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    float* o = out + (static_cast<size_t>(b) * T + t) * C + static_cast<size_t>(h) * kHs;
    o[lane] = o_s[(wrow + r) * kHs + lane] * inv;
    o[lane + 32] = o_s[(wrow + r) * kHs + lane + 32] * inv;
    if (lane == 0) lse[static_cast<size_t>(bh) * T + t] = m[r] + logf(l[r]);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, kernel 1 (dq). smem: q, dout, k, v, ds (16-bit); s, dp, dq (fp32).
constexpr size_t kDqSmem = 5 * kTile16Bytes + 3 * kTile32Bytes;

template <typename T16>
__global__ void __launch_bounds__(kThreads)
    TcBackwardDqKernel(float* __restrict__ dqkv, float* __restrict__ d_scratch,
                       const float* __restrict__ dout, const float* __restrict__ qkv,
                       const float* __restrict__ out, const float* __restrict__ lse, int T, int NH,
                       int NKV, int tiles, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  T16* q_s = reinterpret_cast<T16*>(smem);
  T16* do_s = q_s + kTile * kHs;
  T16* k_s = do_s + kTile * kHs;
  T16* v_s = k_s + kTile * kHs;
  T16* ds_s = v_s + kTile * kHs;
  float* s_s = reinterpret_cast<float*>(ds_s + kTile * kHs);
  float* dp_s = s_s + kTile * kTile;
  float* dq_s = dp_s + kTile * kTile;

  const int heads = gridDim.x / tiles;
  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH, h = bh % NH;
  const Geometry geo = Locate(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * kHs;
  const float* dout_h = dout + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * kHs;
  const float* out_h = out + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * kHs;
  const int t0 = tile * kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wrow = warp * kFrag;

  LoadTile16(q_s, geo.q, geo.C3, t0, T);
  LoadTile16(do_s, dout_h, C, t0, T);
  for (int i = lane; i < kFrag * kHs; i += 32) dq_s[wrow * kHs + i] = 0.0f;
  float D[kFrag], L[kFrag];
#pragma unroll
  for (int r = 0; r < kFrag; ++r) {
    const int t = t0 + wrow + r;
    D[r] = 0.0f;
    L[r] = 0.0f;
    if (t < T) {
      const size_t off = static_cast<size_t>(t) * C;
      D[r] = WarpSum(dout_h[off + lane] * out_h[off + lane] +
                     dout_h[off + lane + 32] * out_h[off + lane + 32]);
      L[r] = lse[static_cast<size_t>(bh) * T + t];
      if (lane == 0) d_scratch[static_cast<size_t>(bh) * T + t] = D[r];
    }
  }
  for (int s0 = 0; s0 <= t0 && s0 < T; s0 += kTile) {
    __syncthreads();
    LoadTile16(k_s, geo.k, geo.C3, s0, T);
    LoadTile16(v_s, geo.v, geo.C3, s0, T);
    __syncthreads();
    WarpABt(s_s + wrow * kTile, q_s + wrow * kHs, k_s);
    WarpABt(dp_s + wrow * kTile, do_s + wrow * kHs, v_s);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < kFrag; ++r) {
      const int t = t0 + wrow + r;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int c = lane + 32 * half;
        const int s = s0 + c;
        const int i = (wrow + r) * kTile + c;
        float ds = 0.0f;
        if (t < T && s <= t) {
          const float p = expf(s_s[i] * scale - L[r]);
          ds = p * (dp_s[i] - D[r]);
        }
        ds_s[i] = To16<T16>(ds);
      }
    }
    __syncwarp();
    WarpAccumulateAB(dq_s + wrow * kHs, ds_s + wrow * kTile, k_s);
    __syncwarp();
  }
#pragma unroll
  for (int r = 0; r < kFrag; ++r) {
    const int t = t0 + wrow + r;
    if (t >= T) continue;
    float* dq = dqkv + (static_cast<size_t>(b) * T + t) * geo.C3 + static_cast<size_t>(h) * kHs;
    dq[lane] = dq_s[(wrow + r) * kHs + lane] * scale;
    dq[lane + 32] = dq_s[(wrow + r) * kHs + lane + 32] * scale;
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, kernel 2 (dk, dv). smem: k, v, q, dout, p^T, ds^T (16-bit); s^T, dp^T, dk, dv
// (fp32); lse and D of the query tile.
constexpr size_t kDkvSmem = 6 * kTile16Bytes + 4 * kTile32Bytes + 2 * kTile * sizeof(float);

template <typename T16>
__global__ void __launch_bounds__(kThreads)
    TcBackwardDkvKernel(float* __restrict__ dqkv, const float* __restrict__ d_scratch,
                        const float* __restrict__ dout, const float* __restrict__ qkv,
                        const float* __restrict__ lse, int T, int NH, int NKV, int tiles,
                        float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  T16* k_s = reinterpret_cast<T16*>(smem);
  T16* v_s = k_s + kTile * kHs;
  T16* q_s = v_s + kTile * kHs;
  T16* do_s = q_s + kTile * kHs;
  T16* pt_s = do_s + kTile * kHs;
  T16* dst_s = pt_s + kTile * kHs;
  float* st_s = reinterpret_cast<float*>(dst_s + kTile * kHs);
  float* dpt_s = st_s + kTile * kTile;
  float* dk_s = dpt_s + kTile * kTile;
  float* dv_s = dk_s + kTile * kHs;
  float* lse_s = dv_s + kTile * kHs;
  float* d_s = lse_s + kTile;

  const int kv_heads = gridDim.x / tiles;
  const int bg = blockIdx.x % kv_heads;
  const int tile = static_cast<int>(blockIdx.x / kv_heads);  // heaviest (first) tiles first
  const int b = bg / NKV, g = bg % NKV;
  const int group = NH / NKV;
  const Geometry geo0 = Locate(qkv, b, g * group, g, T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * kHs;
  const int s0 = tile * kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wrow = warp * kFrag;

  LoadTile16(k_s, geo0.k, geo0.C3, s0, T);
  LoadTile16(v_s, geo0.v, geo0.C3, s0, T);
  for (int i = lane; i < kFrag * kHs; i += 32) {
    dk_s[wrow * kHs + i] = 0.0f;
    dv_s[wrow * kHs + i] = 0.0f;
  }
  for (int h = g * group; h < (g + 1) * group; ++h) {
    const Geometry geo = Locate(qkv, b, h, g, T, NH, NKV);
    const float* dout_h = dout + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * kHs;
    const size_t bh = static_cast<size_t>(b) * NH + h;
    for (int t0 = s0; t0 < T; t0 += kTile) {
      __syncthreads();
      LoadTile16(q_s, geo.q, geo.C3, t0, T);
      LoadTile16(do_s, dout_h, C, t0, T);
      for (int i = threadIdx.x; i < kTile; i += kThreads) {
        const int t = t0 + i;
        lse_s[i] = t < T ? lse[bh * T + t] : 0.0f;
        d_s[i] = t < T ? d_scratch[bh * T + t] : 0.0f;
      }
      __syncthreads();
      // s^T (keys x queries) = k q^T; dp^T = v dout^T.
      WarpABt(st_s + wrow * kTile, k_s + wrow * kHs, q_s);
      WarpABt(dpt_s + wrow * kTile, v_s + wrow * kHs, do_s);
      __syncwarp();
#pragma unroll
      for (int r = 0; r < kFrag; ++r) {
        const int s = s0 + wrow + r;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int c = lane + 32 * half;
          const int t = t0 + c;
          const int i = (wrow + r) * kTile + c;
          float p = 0.0f, ds = 0.0f;
          if (t < T && s <= t) {
            p = expf(st_s[i] * scale - lse_s[c]);
            ds = p * (dpt_s[i] - d_s[c]);
          }
          pt_s[i] = To16<T16>(p);
          dst_s[i] = To16<T16>(ds);
        }
      }
      __syncwarp();
      WarpAccumulateAB(dv_s + wrow * kHs, pt_s + wrow * kTile, do_s);
      WarpAccumulateAB(dk_s + wrow * kHs, dst_s + wrow * kTile, q_s);
      __syncwarp();
    }
  }
#pragma unroll
  for (int r = 0; r < kFrag; ++r) {
    const int s = s0 + wrow + r;
    if (s >= T) continue;
    float* row = dqkv + (static_cast<size_t>(b) * T + s) * geo0.C3;
    float* dk = row + static_cast<size_t>(NH + g) * kHs;
    float* dv = row + static_cast<size_t>(NH + NKV + g) * kHs;
    dk[lane] = dk_s[(wrow + r) * kHs + lane] * scale;
    dk[lane + 32] = dk_s[(wrow + r) * kHs + lane + 32] * scale;
    dv[lane] = dv_s[(wrow + r) * kHs + lane];
    dv[lane + 32] = dv_s[(wrow + r) * kHs + lane + 32];
  }
}

template <typename Kernel>
cudaError_t AllowSmem(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

template <typename T16>
cudaError_t Forward(float* out, float* lse, const float* qkv, int B, int T, int NH, int NKV,
                    cudaStream_t stream) {
  const int tiles = (T + kTile - 1) / kTile;
  if (cudaError_t e = AllowSmem(TcForwardKernel<T16>, kForwardSmem); e != cudaSuccess) return e;
  TcForwardKernel<T16><<<tiles * B * NH, kThreads, kForwardSmem, stream>>>(
      out, lse, qkv, T, NH, NKV, tiles, 1.0f / sqrtf(static_cast<float>(kHs)));
  return cudaGetLastError();
}

template <typename T16>
cudaError_t Backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                     const float* lse, int B, int T, int NH, int NKV, float* scratch,
                     cudaStream_t stream) {
  const int tiles = (T + kTile - 1) / kTile;
  const float scale = 1.0f / sqrtf(static_cast<float>(kHs));
  if (cudaError_t e = AllowSmem(TcBackwardDqKernel<T16>, kDqSmem); e != cudaSuccess) return e;
  if (cudaError_t e = AllowSmem(TcBackwardDkvKernel<T16>, kDkvSmem); e != cudaSuccess) return e;
  TcBackwardDqKernel<T16><<<tiles * B * NH, kThreads, kDqSmem, stream>>>(
      dqkv, scratch, dout, qkv, out, lse, T, NH, NKV, tiles, scale);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  TcBackwardDkvKernel<T16><<<tiles * B * NKV, kThreads, kDkvSmem, stream>>>(
      dqkv, scratch, dout, qkv, lse, T, NH, NKV, tiles, scale);
  return cudaGetLastError();
}

}  // namespace

bool TensorCoreAttentionSupported(int hs) { return hs == kHs; }

cudaError_t LaunchTensorCoreAttentionForward(float* out, float* lse, const float* qkv, int B, int T,
                                             int NH, int NKV, bool fp16, cudaStream_t stream) {
  if (B <= 0 || T <= 0) return cudaSuccess;
  return fp16 ? Forward<__half>(out, lse, qkv, B, T, NH, NKV, stream)
              : Forward<__nv_bfloat16>(out, lse, qkv, B, T, NH, NKV, stream);
}

cudaError_t LaunchTensorCoreAttentionBackward(float* dqkv, const float* dout, const float* qkv,
                                              const float* out, const float* lse, int B, int T,
                                              int NH, int NKV, bool fp16, float* scratch,
                                              cudaStream_t stream) {
  if (B <= 0 || T <= 0) return cudaSuccess;
  return fp16 ? Backward<__half>(dqkv, dout, qkv, out, lse, B, T, NH, NKV, scratch, stream)
              : Backward<__nv_bfloat16>(dqkv, dout, qkv, out, lse, B, T, NH, NKV, scratch, stream);
}

}  // namespace spillway::kernels::cuda
