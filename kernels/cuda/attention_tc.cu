// Causal (grouped-query) attention on tensor cores, for the mixed-precision matmul setting
// (Ops::SetMatmulPrecision bf16 / fp16) and head size 64: the products q k^T, p v, dout v^T,
// ds k, p^T dout and ds^T q take their operands rounded to 16 bits and accumulate in fp32
// (mma.sync m16n8k16); the softmax, its statistics and every buffer stay fp32, with the layouts
// and the contract of kernels/ops.h (no (T,T) matrix is stored; lse saved).
//
// Flash-attention-2 style: tiles of 64 query rows and 64 key rows, 4 warps per block, warp w
// owning rows [16w, 16w+16) of the block's tile. Scores, probabilities and accumulators stay in
// registers in the mma fragment layout; a C fragment of two adjacent 8-column tiles is the A
// fragment of the next product, so p and ds never go through shared memory. Shared memory holds
// the 16-bit copies of the tiles (converted from the fp32 buffers on load), read with ldmatrix.
// Fixed loop orders and no atomics: results are bitwise reproducible.
//  - Forward: a block per (batch, head, query tile); online softmax over the key tiles up to the
//    diagonal (exp2 of log2e-scaled scores; row sums kept per thread, combined at the end).
//  - Backward, kernel 1: a block per (batch, head, query tile): D_i = dout_i . out_i (fp32, to
//    scratch), dq = scale * sum_j ds_ij k_j with p and ds recomputed from lse.
//  - Backward, kernel 2: a block per (batch, kv head, key tile): dk, dv summed over the kv head's
//    query heads in ascending order and over the query tiles from the diagonal on.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

constexpr int kHs = 64;    // head size handled here
constexpr int kTile = 64;  // query and key rows per tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kStride = kHs + 8;    // 16-bit elements per shared row: conflict-free ldmatrix
constexpr int kNTiles = kTile / 8;  // 8-column mma tiles across a 64-wide product
constexpr int kKSteps = kHs / 16;   // 16-deep mma steps over 64
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFullMask = 0xffffffffu;

// The 16-bit type's packing and its mma.
template <typename T16>
struct Mma16;

template <>
struct Mma16<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  static __device__ __forceinline__ void Run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct Mma16<__half> {
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  static __device__ __forceinline__ void Run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

__device__ __forceinline__ void LdMatrix4(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

__device__ __forceinline__ void LdMatrix4Trans(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// Fragment loads from a shared tile (rows of kStride 16-bit elements), by the whole warp.
// A (16 x 16, row-major) at rows [row0, row0 + 16), columns [k0, k0 + 16).
template <typename T16>
__device__ __forceinline__ void LoadA(uint32_t (&a)[4], const T16* s, int row0, int k0) {
  const int lane = threadIdx.x % 32;
  LdMatrix4(a, s + (row0 + lane % 16) * kStride + k0 + 8 * (lane / 16));
}
// B of two 8-column tiles, n in [n0, n0 + 16), k in [k0, k0 + 16), where B[k][n] = s[n][k]:
// {b[0], b[1]} for columns [n0, n0 + 8), {b[2], b[3]} for [n0 + 8, n0 + 16).
template <typename T16>
__device__ __forceinline__ void LoadBRows(uint32_t (&b)[4], const T16* s, int n0, int k0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  LdMatrix4(b, s + (n0 + lane % 8 + 8 * (m / 2)) * kStride + k0 + 8 * (m % 2));
}
// The same where B[k][n] = s[k][n].
template <typename T16>
__device__ __forceinline__ void LoadBCols(uint32_t (&b)[4], const T16* s, int k0, int n0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  LdMatrix4Trans(b, s + (k0 + lane % 8 + 8 * (m % 2)) * kStride + n0 + 8 * (m / 2));
}

// c[n] (16 x 64 in 8 column tiles) = A rows [row0, row0 + 16) of `a` times B[k][n] = b[n][k],
// both 64 deep: c = a b^T.
template <typename T16>
__device__ __forceinline__ void WarpABt(float (&c)[kNTiles][4], const T16* a, int row0,
                                        const T16* b) {
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0.0f;
#pragma unroll
  for (int k = 0; k < kKSteps; ++k) {
    uint32_t fa[4];
    LoadA(fa, a, row0, 16 * k);
#pragma unroll
    for (int n = 0; n < kNTiles; n += 2) {
      uint32_t fb[4];
      LoadBRows(fb, b, 8 * n, 16 * k);
      Mma16<T16>::Run(c[n], fa, fb[0], fb[1]);
      Mma16<T16>::Run(c[n + 1], fa, fb[2], fb[3]);
    }
  }
}

// acc (16 x 64) += p (16 x 64, in C fragments, rounded to 16 bits here) times b (64 x 64,
// row-major [k][n]).
template <typename T16>
__device__ __forceinline__ void WarpAccumulatePB(float (&acc)[kNTiles][4],
                                                 const float (&p)[kNTiles][4], const T16* b) {
#pragma unroll
  for (int k = 0; k < kKSteps; ++k) {
    const uint32_t fa[4] = {Mma16<T16>::Pack(p[2 * k][0], p[2 * k][1]),
                            Mma16<T16>::Pack(p[2 * k][2], p[2 * k][3]),
                            Mma16<T16>::Pack(p[2 * k + 1][0], p[2 * k + 1][1]),
                            Mma16<T16>::Pack(p[2 * k + 1][2], p[2 * k + 1][3])};
#pragma unroll
    for (int n = 0; n < kNTiles; n += 2) {
      uint32_t fb[4];
      LoadBCols(fb, b, 16 * k, 8 * n);
      Mma16<T16>::Run(acc[n], fa, fb[0], fb[1]);
      Mma16<T16>::Run(acc[n + 1], fa, fb[2], fb[3]);
    }
  }
}

// dst (kTile rows, kStride apart) 16-bit = rows [row0, row0 + kTile) of src (row stride
// `stride` floats), 64 columns; rows >= T are zero. Called by the whole block.
template <typename T16>
__device__ __forceinline__ void LoadTile(T16* dst, const float* src, size_t stride, int row0,
                                         int T) {
  for (int idx = threadIdx.x; idx < kTile * kHs / 4; idx += kThreads) {
    const int r = idx / (kHs / 4);
    const int d = (idx % (kHs / 4)) * 4;
    const int t = row0 + r;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (t < T) {
      const float* p = src + static_cast<size_t>(t) * stride + d;
      v = reinterpret_cast<uintptr_t>(p) % 16 == 0 ? *reinterpret_cast<const float4*>(p)
                                                   : make_float4(p[0], p[1], p[2], p[3]);
    }
    uint2 packed;
    packed.x = Mma16<T16>::Pack(v.x, v.y);
    packed.y = Mma16<T16>::Pack(v.z, v.w);
    *reinterpret_cast<uint2*>(dst + r * kStride + d) = packed;
  }
}

// Sum over the 4 threads of a quad (the threads sharing a row of a C fragment).
__device__ __forceinline__ float QuadSum(float x) {
  x += __shfl_xor_sync(kFullMask, x, 1);
  return x + __shfl_xor_sync(kFullMask, x, 2);
}
__device__ __forceinline__ float QuadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(kFullMask, x, 1));
  return fmaxf(x, __shfl_xor_sync(kFullMask, x, 2));
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

// In a C fragment, element e of column tile n of a thread is at row (lane / 4) + 8 * (e / 2)
// and column 8 n + 2 (lane % 4) + e % 2 of the warp's 16 x 64 block.
__device__ __forceinline__ int FragRow(int e) { return threadIdx.x % 32 / 4 + 8 * (e / 2); }
__device__ __forceinline__ int FragCol(int n, int e) {
  return 8 * n + 2 * (threadIdx.x % 4) + e % 2;
}

// Writes a 16 x 64 C-fragment block times `scale` to rows [t0, ...) (those < T) of dst (row
// stride `stride` floats).
__device__ __forceinline__ void StoreRows(float* dst, size_t stride, const float (&c)[kNTiles][4],
                                          int t0, int T, float scale0, float scale1) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int t = t0 + FragRow(2 * half);
    if (t >= T) continue;
    const float scale = half == 0 ? scale0 : scale1;
    float* row = dst + static_cast<size_t>(t) * stride;
#pragma unroll
    for (int n = 0; n < kNTiles; ++n) {
      *reinterpret_cast<float2*>(row + FragCol(n, 0)) =
          make_float2(c[n][2 * half] * scale, c[n][2 * half + 1] * scale);
    }
  }
}

constexpr size_t kTileBytes = kTile * kStride * 2;

// ---------------------------------------------------------------------------------------------
// Forward. smem: q, k, v (16-bit).
constexpr size_t kForwardSmem = 3 * kTileBytes;

template <typename T16>
__global__ void __launch_bounds__(kThreads)
    TcForwardKernel(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv,
                    int T, int NH, int NKV, int tiles, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  T16* q_s = reinterpret_cast<T16*>(smem);
  T16* k_s = q_s + kTile * kStride;
  T16* v_s = k_s + kTile * kStride;

  const int heads = gridDim.x / tiles;
  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH, h = bh % NH;
  const Geometry geo = Locate(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const int t0 = tile * kTile;
  const int wrow = threadIdx.x / 32 * 16;
  const float scale2 = scale * kLog2e;  // scores in log2 units

  LoadTile(q_s, geo.q, geo.C3, t0, T);
  float o[kNTiles][4];
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows FragRow(0), FragRow(2)
  for (int s0 = 0; s0 <= t0; s0 += kTile) {
    __syncthreads();
    LoadTile(k_s, geo.k, geo.C3, s0, T);
    LoadTile(v_s, geo.v, geo.C3, s0, T);
    __syncthreads();
    float s[kNTiles][4];
    WarpABt(s, q_s, wrow, k_s);
    float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kNTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool masked = s0 == t0 && FragCol(n, e) > wrow + FragRow(e);
        s[n][e] = masked ? -INFINITY : s[n][e] * scale2;
        row_max[e / 2] = fmaxf(row_max[e / 2], s[n][e]);
      }
    }
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], QuadMax(row_max[r]));  // finite: key 0 is never masked
      corr[r] = exp2f(m[r] - m_new);
      m[r] = m_new;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int n = 0; n < kNTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - m[e / 2]);
        l[e / 2] += s[n][e];
        o[n][e] *= corr[e / 2];
      }
    }
    WarpAccumulatePB<T16>(o, s, v_s);
  }
  const size_t C = static_cast<size_t>(NH) * kHs;
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = QuadSum(l[r]);
    inv[r] = 1.0f / l[r];
    const int t = t0 + wrow + FragRow(2 * r);
    if (threadIdx.x % 4 == 0 && t < T) {
      lse[static_cast<size_t>(bh) * T + t] = (m[r] + log2f(l[r])) * kLn2;
    }
  }
  StoreRows(out + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * kHs, C, o, t0 + wrow, T,
            inv[0], inv[1]);
}

// ---------------------------------------------------------------------------------------------
// Backward, kernel 1 (dq). smem: q, dout, k, v (16-bit).
constexpr size_t kDqSmem = 4 * kTileBytes;

template <typename T16>
__global__ void __launch_bounds__(kThreads)
    TcBackwardDqKernel(float* __restrict__ dqkv, float* __restrict__ d_scratch,
                       const float* __restrict__ dout, const float* __restrict__ qkv,
                       const float* __restrict__ out, const float* __restrict__ lse, int T, int NH,
                       int NKV, int tiles, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  T16* q_s = reinterpret_cast<T16*>(smem);
  T16* do_s = q_s + kTile * kStride;
  T16* k_s = do_s + kTile * kStride;
  T16* v_s = k_s + kTile * kStride;

  const int heads = gridDim.x / tiles;
  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH, h = bh % NH;
  const Geometry geo = Locate(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * kHs;
  const float* dout_h = dout + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * kHs;
  const float* out_h = out + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * kHs;
  const int t0 = tile * kTile;
  const int wrow = threadIdx.x / 32 * 16;
  const float scale2 = scale * kLog2e;

  LoadTile(q_s, geo.q, geo.C3, t0, T);
  LoadTile(do_s, dout_h, C, t0, T);
  // D and lse (log2 units) of the thread's two rows; a quad sums D over its 4 x 16 columns.
  float D[2], L[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = t0 + wrow + FragRow(2 * r);
    float partial = 0.0f;
    L[r] = 0.0f;
    if (t < T) {
      const size_t off = static_cast<size_t>(t) * C + 16 * (threadIdx.x % 4);
#pragma unroll
      for (int d = 0; d < 16; ++d) partial += dout_h[off + d] * out_h[off + d];
      L[r] = lse[static_cast<size_t>(bh) * T + t] * kLog2e;
    }
    D[r] = QuadSum(partial);
    if (threadIdx.x % 4 == 0 && t < T) d_scratch[static_cast<size_t>(bh) * T + t] = D[r];
  }
  float dq[kNTiles][4];
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
  for (int s0 = 0; s0 <= t0; s0 += kTile) {
    __syncthreads();
    LoadTile(k_s, geo.k, geo.C3, s0, T);
    LoadTile(v_s, geo.v, geo.C3, s0, T);
    __syncthreads();
    float s[kNTiles][4], dp[kNTiles][4];
    WarpABt(s, q_s, wrow, k_s);
    WarpABt(dp, do_s, wrow, v_s);
#pragma unroll
    for (int n = 0; n < kNTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool masked = s0 == t0 && FragCol(n, e) > wrow + FragRow(e);
        const float p = masked ? 0.0f : exp2f(s[n][e] * scale2 - L[e / 2]);
        s[n][e] = p * (dp[n][e] - D[e / 2]);  // ds
      }
    }
    WarpAccumulatePB<T16>(dq, s, k_s);
  }
  StoreRows(dqkv + static_cast<size_t>(b) * T * geo.C3 + static_cast<size_t>(h) * kHs, geo.C3, dq,
            t0 + wrow, T, scale, scale);
}

// ---------------------------------------------------------------------------------------------
// Backward, kernel 2 (dk, dv). smem: k, v, q, dout (16-bit); lse (log2 units) and D of the
// query tile.
constexpr size_t kDkvSmem = 4 * kTileBytes + 2 * kTile * sizeof(float);

template <typename T16>
__global__ void __launch_bounds__(kThreads)
    TcBackwardDkvKernel(float* __restrict__ dqkv, const float* __restrict__ d_scratch,
                        const float* __restrict__ dout, const float* __restrict__ qkv,
                        const float* __restrict__ lse, int T, int NH, int NKV, int tiles,
                        float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  T16* k_s = reinterpret_cast<T16*>(smem);
  T16* v_s = k_s + kTile * kStride;
  T16* q_s = v_s + kTile * kStride;
  T16* do_s = q_s + kTile * kStride;
  float* lse_s = reinterpret_cast<float*>(do_s + kTile * kStride);
  float* d_s = lse_s + kTile;

  const int kv_heads = gridDim.x / tiles;
  const int bg = blockIdx.x % kv_heads;
  const int tile = static_cast<int>(blockIdx.x / kv_heads);  // heaviest (first) tiles first
  const int b = bg / NKV, g = bg % NKV;
  const int group = NH / NKV;
  const Geometry geo0 = Locate(qkv, b, g * group, g, T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * kHs;
  const int s0 = tile * kTile;
  const int wrow = threadIdx.x / 32 * 16;
  const float scale2 = scale * kLog2e;

  LoadTile(k_s, geo0.k, geo0.C3, s0, T);
  LoadTile(v_s, geo0.v, geo0.C3, s0, T);
  float dk[kNTiles][4], dv[kNTiles][4];
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;
  }
  for (int h = g * group; h < (g + 1) * group; ++h) {
    const Geometry geo = Locate(qkv, b, h, g, T, NH, NKV);
    const float* dout_h = dout + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * kHs;
    const size_t bh = static_cast<size_t>(b) * NH + h;
    for (int t0 = s0; t0 < T; t0 += kTile) {
      __syncthreads();
      LoadTile(q_s, geo.q, geo.C3, t0, T);
      LoadTile(do_s, dout_h, C, t0, T);
      for (int i = threadIdx.x; i < kTile; i += kThreads) {
        const int t = t0 + i;
        lse_s[i] = t < T ? lse[bh * T + t] * kLog2e : INFINITY;  // p = 0 past T
        d_s[i] = t < T ? d_scratch[bh * T + t] : 0.0f;
      }
      __syncthreads();
      // s^T (keys x queries) = k q^T; dp^T = v dout^T.
      float st[kNTiles][4], dpt[kNTiles][4];
      WarpABt(st, k_s, wrow, q_s);
      WarpABt(dpt, v_s, wrow, do_s);
#pragma unroll
      for (int n = 0; n < kNTiles; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = FragCol(n, e);
          const bool masked = t0 == s0 && c < wrow + FragRow(e);
          const float p = masked ? 0.0f : exp2f(st[n][e] * scale2 - lse_s[c]);
          st[n][e] = p;
          dpt[n][e] = p * (dpt[n][e] - d_s[c]);  // ds^T
        }
      }
      WarpAccumulatePB<T16>(dv, st, do_s);
      WarpAccumulatePB<T16>(dk, dpt, q_s);
    }
  }
  float* rows = dqkv + static_cast<size_t>(b) * T * geo0.C3;
  StoreRows(rows + static_cast<size_t>(NH + g) * kHs, geo0.C3, dk, s0 + wrow, T, scale, scale);
  StoreRows(rows + static_cast<size_t>(NH + NKV + g) * kHs, geo0.C3, dv, s0 + wrow, T, 1.0f, 1.0f);
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
