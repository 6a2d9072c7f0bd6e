// The tiles, fragments and loops that the tensor-core attention kernels share: attention_tc.cu's
// (mma.sync) and attention_wgmma.cu's (Hopper's warpgroup products). Block and tile sizes,
// mma.sync fragments and their ldmatrix loads, cp.async tile copies into padded rows or
// 128-byte-swizzled tiles, the key-tile loop, the online softmax, the dq kernels' row values,
// row stores and the bias gradient's column sums. Device code; included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/ptx.cuh"
#include "kernels/cuda/store_as.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace spillway::kernels::cuda::tc {

constexpr int kTile = 64;  // key rows per step (forward, dq) and per block (dk, dv)
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFullMask = 0xffffffffu;

// 16-bit elements per shared row of a head-size-HS tile: rows 16 bytes apart modulo 128, so
// ldmatrix's eight row addresses fall in distinct banks.
template <int HS>
constexpr int kStride = HS + 8;

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

// Fragment loads from a shared tile (rows of S 16-bit elements), by the whole warp.
// A (16 x 16, row-major) at rows [row0, row0 + 16), columns [k0, k0 + 16).
template <int S, typename T16>
__device__ __forceinline__ void LoadA(uint32_t (&a)[4], const T16* s, int row0, int k0) {
  const int lane = threadIdx.x % 32;
  LdMatrix4(a, s + (row0 + lane % 16) * S + k0 + 8 * (lane / 16));
}
// B of two 8-column tiles, n in [n0, n0 + 16), k in [k0, k0 + 16), where B[k][n] = s[n][k]:
// {b[0], b[1]} for columns [n0, n0 + 8), {b[2], b[3]} for [n0 + 8, n0 + 16).
template <int S, typename T16>
__device__ __forceinline__ void LoadBRows(uint32_t (&b)[4], const T16* s, int n0, int k0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  LdMatrix4(b, s + (n0 + lane % 8 + 8 * (m / 2)) * S + k0 + 8 * (m % 2));
}
// The same where B[k][n] = s[k][n].
template <int S, typename T16>
__device__ __forceinline__ void LoadBCols(uint32_t (&b)[4], const T16* s, int k0, int n0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  LdMatrix4Trans(b, s + (k0 + lane % 8 + 8 * (m % 2)) * S + n0 + 8 * (m / 2));
}

// The A fragments of rows [row0, row0 + 16) of a K-deep shared tile (row stride SA), for
// products that reuse them.
template <int K, int SA, typename T16>
__device__ __forceinline__ void LoadRows(uint32_t (&a)[K / 16][4], const T16* s, int row0) {
#pragma unroll
  for (int k = 0; k < K / 16; ++k) LoadA<SA>(a[k], s, row0, 16 * k);
}

// The warp's products over M blocks of 16 rows at once, each B fragment loaded once for all of
// them. c (M x 16 x N, in N / 8 column tiles) = a (M x 16 x K, in fragments) times
// B[k][n] = b[n][k] (row stride SB): c = a b^T.
template <typename T16, int M, int N, int K, int SB>
__device__ __forceinline__ void WarpRowsBt(float (&c)[M][N / 8][4],
                                           const uint32_t (&a)[M][K / 16][4], const T16* b) {
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int n = 0; n < N / 8; ++n) c[i][n][0] = c[i][n][1] = c[i][n][2] = c[i][n][3] = 0.0f;
  }
#pragma unroll
  for (int k = 0; k < K / 16; ++k) {
#pragma unroll
    for (int n = 0; n < N / 8; n += 2) {
      uint32_t fb[4];
      LoadBRows<SB>(fb, b, 8 * n, 16 * k);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        Mma16<T16>::Run(c[i][n], a[i][k], fb[0], fb[1]);
        Mma16<T16>::Run(c[i][n + 1], a[i][k], fb[2], fb[3]);
      }
    }
  }
}
// acc (M x 16 x N) += p (M x 16 x K, in C fragments, rounded to 16 bits here) times b (K x N,
// row-major [k][n], row stride SB).
template <typename T16, int M, int N, int K, int SB>
__device__ __forceinline__ void WarpAccumulatePB(float (&acc)[M][N / 8][4],
                                                 const float (&p)[M][K / 8][4], const T16* b) {
#pragma unroll
  for (int k = 0; k < K / 16; ++k) {
    uint32_t fa[M][4];
#pragma unroll
    for (int i = 0; i < M; ++i) {
      fa[i][0] = Mma16<T16>::Pack(p[i][2 * k][0], p[i][2 * k][1]);
      fa[i][1] = Mma16<T16>::Pack(p[i][2 * k][2], p[i][2 * k][3]);
      fa[i][2] = Mma16<T16>::Pack(p[i][2 * k + 1][0], p[i][2 * k + 1][1]);
      fa[i][3] = Mma16<T16>::Pack(p[i][2 * k + 1][2], p[i][2 * k + 1][3]);
    }
#pragma unroll
    for (int n = 0; n < N / 8; n += 2) {
      uint32_t fb[4];
      LoadBCols<SB>(fb, b, 16 * k, 8 * n);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        Mma16<T16>::Run(acc[i][n], fa[i], fb[0], fb[1]);
        Mma16<T16>::Run(acc[i][n + 1], fa[i], fb[2], fb[3]);
      }
    }
  }
}

// 16-bit elements from one row of a tile to the next: padded rows (kStride), or the 64-element
// rows of a 128-byte-swizzled tile for the warpgroup products (kSwizzle).
template <int HS, bool kSwizzle>
constexpr int kRowPitch = kSwizzle ? HS : kStride<HS>;

// Issues the copy of rows [row0, row0 + ROWS) of a 16-bit HS-wide buffer (row stride `stride`
// elements, 16-byte aligned rows) into dst (kRowPitch apart: padded rows, or where kSwizzle a
// 128-byte-swizzled tile, wgmma::SwizzledChunk); rows >= T become zeros. Called by the whole
// block; lands after WaitCopies and a barrier (and, for the warpgroup products' reads,
// wgmma::FenceSharedWrites).
template <int ROWS, int HS, bool kSwizzle = false, typename T16>
__device__ __forceinline__ void CopyTile(T16* dst, const T16* src, size_t stride, int row0, int T) {
  static_assert(!kSwizzle || HS == 64, "swizzled tiles hold rows of 64 elements");
  constexpr int kChunks = HS / 8;  // 16-byte chunks per row
  static_assert(ROWS * kChunks % kThreads == 0, "tile does not split evenly over the block");
#pragma unroll
  for (int i = 0; i < ROWS * kChunks / kThreads; ++i) {
    const int idx = static_cast<int>(threadIdx.x) + i * kThreads;
    const int r = idx / kChunks, c = idx % kChunks;
    const int t = row0 + r;
    const T16* from = src + static_cast<size_t>(t < T ? t : 0) * stride + 8 * c;
    T16* to = kSwizzle ? dst + wgmma::SwizzledChunk(r, c) : dst + r * kStride<HS> + 8 * c;
    CopyAsync16(to, from, t < T ? 16 : 0);
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

// The online softmax's step for a 16-row block over N scores a row (C fragments, masked ones
// -inf): the row maxima m (log2 units) and sums l move on, o is rescaled to the new maxima, and s
// becomes the probabilities exp2(s * scale2 - m). m is finite from the first tile on (key 0 is
// never masked); a row wholly masked in a tile keeps its m and gets probabilities 0 there.
template <int N, int HS>
__device__ __forceinline__ void OnlineSoftmax(float (&s)[N / 8][4], float (&m)[2], float (&l)[2],
                                              float (&o)[HS / 8][4], float scale2) {
  float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < N / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) row_max[e / 2] = fmaxf(row_max[e / 2], s[n][e]);
  }
  float corr[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    // The maximum of the scaled scores is the scaled maximum (scale2 > 0).
    const float m_new = fmaxf(m[r], QuadMax(row_max[r]) * scale2);
    corr[r] = Exp2(m[r] - m_new);
    m[r] = m_new;
    l[r] *= corr[r];
  }
#pragma unroll
  for (int n = 0; n < N / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[n][e] = Exp2(fmaf(s[n][e], scale2, -m[e / 2]));
      l[e / 2] += s[n][e];
    }
  }
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] *= corr[e / 2];
  }
}

// The dq kernels' row values of query row t of a head (dout_h, out_h: its rows, C apart): D = dout
// . out, summed over a quad (each thread HS / 4 columns) and stored to d_bh[t], and L = the row's
// lse (lse_bh[t]) in log2 units; 0 both past T.
template <int HS, typename O>
__device__ __forceinline__ void RowStats(float& D, float& L, const O* dout_h, const O* out_h,
                                         const float* lse_bh, float* d_bh, size_t C, int t, int T) {
  float partial = 0.0f;
  L = 0.0f;
  if (t < T) {
    const size_t off = static_cast<size_t>(t) * C + HS / 4 * (threadIdx.x % 4);
#pragma unroll
    for (int d = 0; d < HS / 4; d += 4) {
      const float4 x = LoadQuadAs(dout_h + off + d, 0);
      const float4 y = LoadQuadAs(out_h + off + d, 0);
      partial += x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
    }
    L = lse_bh[t] * kLog2e;
  }
  D = QuadSum(partial);
  if (threadIdx.x % 4 == 0 && t < T) d_bh[t] = D;
}

// Where head h's queries and kv head g's keys and values of batch b start in the 16-bit qkv copy.
template <typename T16>
struct Geometry {
  size_t C3;  // qkv row width
  const T16* q;
  const T16* k;
  const T16* v;
};

template <int HS, typename T16>
__device__ __forceinline__ Geometry<T16> Locate(const T16* qkv, int b, int h, int g, int T, int NH,
                                                int NKV) {
  Geometry<T16> geo;
  geo.C3 = static_cast<size_t>(NH + 2 * NKV) * HS;
  const T16* row = qkv + static_cast<size_t>(b) * T * geo.C3;
  geo.q = row + static_cast<size_t>(h) * HS;
  geo.k = row + static_cast<size_t>(NH + g) * HS;
  geo.v = row + static_cast<size_t>(NH + NKV + g) * HS;
  return geo;
}

// Issues the copies of key rows [s0, s0 + kTile) of k and v into k_s and v_s (padded rows, or
// 128-byte-swizzled tiles for the warpgroup products where kSwizzle).
template <int HS, bool kSwizzle = false, typename T16>
__device__ __forceinline__ void CopyKeyTile(T16* k_s, T16* v_s, const Geometry<T16>& geo, int s0,
                                            int T) {
  CopyTile<kTile, HS, kSwizzle>(k_s, geo.k, geo.C3, s0, T);
  CopyTile<kTile, HS, kSwizzle>(v_s, geo.v, geo.C3, s0, T);
}

// Buffers of the tiles that stream through a block (key tiles in the forward and dq kernels,
// query tiles in the dk/dv kernel): step i multiplies buffer i % kStages while step i + 1's copy
// lands in the next. With three, the buffer a step refills was last read two steps before, which
// every thread has finished once it has passed the current step's barrier: one barrier a step
// (on the H100 the 124M step +1.3%). With two, a second barrier ends each step. Head size 128
// keeps two: a third halves its blocks per SM (measured: forward 20%, backward 8% slower).
template <int HS>
constexpr int kStages = HS <= 64 ? 3 : 2;
// Shared bytes of kStages buffers of `bytes` each.
template <int HS>
constexpr size_t StagedBytes(size_t bytes) {
  return bytes * kStages<HS>;
}

// The key-tile loop of the forward and dq kernels, for a block of query rows that ends before
// rows_end: key tiles s0 = 0, kTile, ... up to the one holding its last row below T, in kStages
// buffers each of k_s and v_s, the next tile's copy in flight during body(k_s, v_s, s0) on the
// current one. A warp whose last row is warp_last calls body only for the tiles that start at or
// before it (key tile 0 always). Copies issued before the call (the query-side tiles) land
// before the first body.
template <int HS, bool kSwizzle = false, typename T16, typename Body>
__device__ __forceinline__ void ForEachKeyTile(T16* k_s, T16* v_s, const Geometry<T16>& geo,
                                               int rows_end, int warp_last, int T, Body&& body) {
  constexpr int kTileElems = kTile * kRowPitch<HS, kSwizzle>;
  const int last = (min(rows_end, T) - 1) / kTile * kTile;  // the last key tile's first row
  CopyKeyTile<HS, kSwizzle>(k_s, v_s, geo, 0, T);
  CommitCopies();
  for (int s0 = 0, buf = 0; s0 <= last; s0 += kTile, buf = buf + 1 == kStages<HS> ? 0 : buf + 1) {
    if (s0 + kTile <= last) {
      const int next = buf + 1 == kStages<HS> ? 0 : buf + 1;
      CopyKeyTile<HS, kSwizzle>(k_s + next * kTileElems, v_s + next * kTileElems, geo, s0 + kTile,
                                T);
    }
    CommitCopies();  // possibly empty: one group per step either way
    WaitCopies<1>();
    if constexpr (kSwizzle) wgmma::FenceSharedWrites();
    __syncthreads();  // this tile's copies have landed; every thread is done with step i - 1
    if (s0 <= warp_last) body(k_s + buf * kTileElems, v_s + buf * kTileElems, s0);
    if constexpr (kStages<HS> < 3) __syncthreads();  // all are done with the buffer refilled next
  }
}

// A forward or dq block's place: a block per (batch b, head h, query block `tile`, whose R rows
// start at t0), the heaviest (last) query blocks first; bh = b NH + h.
template <int R>
struct QueryBlock {
  int bh, b, h, tile, t0;
  __device__ __forceinline__ QueryBlock(int tiles, int NH) {
    const int heads = gridDim.x / tiles;
    bh = blockIdx.x % heads;
    tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
    b = bh / NH;
    h = bh % NH;
    t0 = tile * R;
  }
};

// A dk/dv step's row values: the lse (log2 units) and D of rows [t0, t0 + QR) of the (batch,
// query head) bh into lse_t and d_t, a thread a row; past T lse is +inf and D 0 (so p = 0 there).
// Read by the step after a barrier.
template <int QR>
__device__ __forceinline__ void StoreStepRowValues(float* lse_t, float* d_t, const float* lse,
                                                   const float* d_scratch, size_t bh, int t0,
                                                   int T) {
  if (threadIdx.x < QR) {
    const int t = t0 + static_cast<int>(threadIdx.x);
    lse_t[threadIdx.x] = t < T ? lse[bh * T + t] * kLog2e : INFINITY;
    d_t[threadIdx.x] = t < T ? d_scratch[bh * T + t] : 0.0f;
  }
}

// A dk/dv block's place and steps: a block per (batch b, kv head g, key tile), the heaviest
// (first) key tiles first; step i multiplies query head Head(i)'s rows [Rows(i), Rows(i) + QR):
// the kv head's query heads in ascending order, each over the query tiles from the key tile's
// first row s0 on.
template <int QR>
struct DkvSteps {
  int b, g, group, tile, s0, per_head, steps, T, NH, NKV;
  __device__ __forceinline__ DkvSteps(int tiles, int T_, int NH_, int NKV_)
      : T(T_), NH(NH_), NKV(NKV_) {
    const int kv_heads = gridDim.x / tiles;
    const int bg = blockIdx.x % kv_heads;
    tile = static_cast<int>(blockIdx.x / kv_heads);
    b = bg / NKV;
    g = bg % NKV;
    group = NH / NKV;
    s0 = tile * kTile;
    per_head = (T - s0 + QR - 1) / QR;
    steps = group * per_head;
  }
  __device__ __forceinline__ int Head(int i) const { return g * group + i / per_head; }
  __device__ __forceinline__ int Rows(int i) const { return s0 + i % per_head * QR; }

  // Issues step i's copies into buffer i % kStages of q_buf and do_buf (q and dout rows
  // [Rows(i), Rows(i) + QR) of query head Head(i); padded rows, or swizzled where kSwizzle), and
  // stores its row values into lse_buf and d_buf (StoreStepRowValues).
  template <int HS, bool kSwizzle, typename T16>
  __device__ __forceinline__ void Issue(int i, T16* q_buf, T16* do_buf, float* lse_buf,
                                        float* d_buf, const T16* qkv, const T16* dout16,
                                        const float* lse, const float* d_scratch) const {
    constexpr int kStepElems = QR * kRowPitch<HS, kSwizzle>;
    const int h = Head(i), t0 = Rows(i), buf = i % kStages<HS>;
    const Geometry<T16> geo = Locate<HS>(qkv, b, h, g, T, NH, NKV);
    const size_t C = static_cast<size_t>(NH) * HS;
    CopyTile<QR, HS, kSwizzle>(q_buf + buf * kStepElems, geo.q, geo.C3, t0, T);
    CopyTile<QR, HS, kSwizzle>(
        do_buf + buf * kStepElems,
        dout16 + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS, C, t0, T);
    StoreStepRowValues<QR>(lse_buf + buf * QR, d_buf + buf * QR, lse, d_scratch,
                           static_cast<size_t>(b) * NH + h, t0, T);
  }
};

// In a C fragment, element e of column tile n of a thread is at row (lane / 4) + 8 * (e / 2)
// and column 8 n + 2 (lane % 4) + e % 2 of the warp's 16-row block.
__device__ __forceinline__ int FragRow(int e) { return threadIdx.x % 32 / 4 + 8 * (e / 2); }
__device__ __forceinline__ int FragCol(int n, int e) {
  return 8 * n + 2 * (threadIdx.x % 4) + e % 2;
}

// Writes a 16 x HS C-fragment block times `scale` to rows [t0, ...) (those < T) of dst (row
// stride `stride` floats).
template <int HS, typename O>
__device__ __forceinline__ void StoreRows(O* dst, size_t stride, const float (&c)[HS / 8][4],
                                          int t0, int T, float scale0, float scale1) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int t = t0 + FragRow(2 * half);
    if (t >= T) continue;
    const float scale = half == 0 ? scale0 : scale1;
    O* row = dst + static_cast<size_t>(t) * stride;
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) {
      const float x = c[n][2 * half] * scale, y = c[n][2 * half + 1] * scale;
      if constexpr (std::is_same_v<O, float>) {
        *reinterpret_cast<float2*>(row + FragCol(n, 0)) = make_float2(x, y);
      } else {
        *reinterpret_cast<__nv_bfloat162*>(row + FragCol(n, 0)) = __floats2bfloat162_rn(x, y);
      }
    }
  }
}

// The bias gradient's share of a 16 x HS C-fragment block StoreRows writes (bf16 rounding of
// `c` times `scale`, rows [t0, ...) below T): each thread adds its values of the rows below T, as
// rounded, into sums[n][j] (column FragCol(n, j)).
template <int HS>
__device__ __forceinline__ void AddRoundedColumns(float (&sums)[HS / 8][2],
                                                  const float (&c)[HS / 8][4], int t0, int T,
                                                  float scale) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    if (t0 + FragRow(2 * half) >= T) continue;
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        sums[n][j] += __bfloat162float(__float2bfloat16_rn(c[n][2 * half + j] * scale));
      }
    }
  }
}

// The block's column sums: each thread's sums (AddRoundedColumns), then the 8 lanes that share
// its columns (a fixed shuffle tree), then the warps in warp order through `smem` (kWarps * HS
// floats, free for this use: the caller is past its last tile); part[d] = column d's sum.
// Called by the whole block.
template <int HS>
__device__ __forceinline__ void StoreColumnSums(float* part, float (&sums)[HS / 8][2],
                                                float* smem) {
  __syncthreads();  // every warp is done with the tiles smem held
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      float v = sums[n][j];
      v += __shfl_xor_sync(kFullMask, v, 4);
      v += __shfl_xor_sync(kFullMask, v, 8);
      v += __shfl_xor_sync(kFullMask, v, 16);
      if (lane < 4) smem[warp * HS + FragCol(n, j)] = v;
    }
  }
  __syncthreads();
  for (int d = threadIdx.x; d < HS; d += kThreads) {
    float total = smem[d];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) total += smem[w * HS + d];
    part[d] = total;
  }
}

// The dk/dv kernels' end: the warp's rows of dk (times scale) and dv, from key row block.s0 +
// wrow, into dqkv (rows C3 wide) and, with kv_parts (bf16 dqkv), the block's column sums of both
// as rounded (StoreColumnSums, through smem). Called by the whole block.
template <int HS, int QR, typename O>
__device__ __forceinline__ void StoreKeyGradients(O* dqkv, float* kv_parts,
                                                  const float (&dk)[HS / 8][4],
                                                  const float (&dv)[HS / 8][4],
                                                  const DkvSteps<QR>& block, int tiles, size_t C3,
                                                  float scale, int wrow, float* smem) {
  const int b = block.b, g = block.g, t0 = block.s0 + wrow;
  const int T = block.T, NH = block.NH, NKV = block.NKV;
  O* rows = dqkv + static_cast<size_t>(b) * T * C3;
  StoreRows<HS>(rows + static_cast<size_t>(NH + g) * HS, C3, dk, t0, T, scale, scale);
  StoreRows<HS>(rows + static_cast<size_t>(NH + NKV + g) * HS, C3, dv, t0, T, 1.0f, 1.0f);
  if (kv_parts == nullptr) return;  // bf16 dqkv only (the launcher's contract)
  float* part = kv_parts + (static_cast<size_t>(b) * tiles + block.tile) * 2 * NKV * HS + g * HS;
  float sums[HS / 8][2] = {};
  AddRoundedColumns<HS>(sums, dk, t0, T, scale);
  StoreColumnSums<HS>(part, sums, smem);
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) sums[n][0] = sums[n][1] = 0.0f;
  AddRoundedColumns<HS>(sums, dv, t0, T, 1.0f);
  StoreColumnSums<HS>(part + NKV * HS, sums, smem);
}

template <int ROWS, int HS>
constexpr size_t kTileBytes = static_cast<size_t>(ROWS) * kStride<HS> * 2;

// Blocks of 16 query rows a warp owns in the forward and dq kernels: 2 at head size 64 (on the
// H100 the forward 5% and the dq kernel 4% faster than 1, the two products' k and v fragments
// loaded once for both; the dk/dv kernel measured 2% slower with two blocks of keys, and keeps
// one); 1 at 128, whose accumulators alone take 128 registers. A block of 4 warps covers
// kBlockRows<M> query rows.
template <int HS>
constexpr int kRowTiles = HS <= 64 ? 2 : 1;
template <int M>
constexpr int kBlockRows = M * 16 * kWarps;
// Blocks per SM the kernels are compiled for: 2 with two row blocks a warp (up to 255 registers a
// thread), 3 with one at head size 64 (168 registers; 8-10% faster on the H100 than 2), else 1.
template <int HS, int M>
constexpr int kMinBlocks = M > 1 ? 2 : (HS <= 64 ? 3 : 1);
// The query blocks a sequence of T splits into (the forward and dq grids: that many per head).
template <int HS>
int QueryBlocks(int T) {
  return (T + kBlockRows<kRowTiles<HS>> - 1) / kBlockRows<kRowTiles<HS>>;
}

// Query rows per step of the dk/dv kernel: 32 at head size 128 keeps its dk and dv
// accumulators (128 registers) and the step's scores within the register file.
template <int HS>
constexpr int kDkvRows = HS <= 64 ? 64 : 32;
// Query rows per product of the dk/dv kernel (a step takes kDkvRows / kDkvPart of them), key
// rows per product of the dq kernel: the scores take half the registers of a whole tile's.
constexpr int kDkvPart = 32;
constexpr int kDqPart = 32;

// Where the swizzled tiles of a warpgroup kernel start: the dynamic shared memory rounded up to
// 1024 bytes (the launch asks for kSwizzleSlack more).
constexpr size_t kSwizzleSlack = 1024;
__device__ __forceinline__ unsigned char* SwizzleAligned(unsigned char* smem) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  return smem + (kSwizzleSlack - a % kSwizzleSlack) % kSwizzleSlack;
}

// The A fragments (16 rows x 16 columns each) of a C-fragment block of 16 x K, rounded to 16 bits.
template <typename T16, int K>
__device__ __forceinline__ void PackA(uint32_t (&a)[K / 16][4], const float (&c)[K / 8][4]) {
#pragma unroll
  for (int k = 0; k < K / 16; ++k) {
    a[k][0] = Mma16<T16>::Pack(c[2 * k][0], c[2 * k][1]);
    a[k][1] = Mma16<T16>::Pack(c[2 * k][2], c[2 * k][3]);
    a[k][2] = Mma16<T16>::Pack(c[2 * k + 1][0], c[2 * k + 1][1]);
    a[k][3] = Mma16<T16>::Pack(c[2 * k + 1][2], c[2 * k + 1][3]);
  }
}

template <typename Kernel>
cudaError_t AllowSmem(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

}  // namespace spillway::kernels::cuda::tc
