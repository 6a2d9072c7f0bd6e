// Causal (grouped-query) attention on tensor cores, for the mixed-precision matmul setting
// (Ops::SetMatmulPrecision bf16 / fp16) and head sizes 64 and 128: the products q k^T, p v,
// dout v^T, ds k, p^T dout and ds^T q take their operands rounded to 16 bits and accumulate in
// fp32 (mma.sync m16n8k16); the softmax, its statistics and every buffer stay fp32 (but for the
// output, which the bf16 launch may write as bf16 and the backward then reads as such), with the
// layouts and the contract of kernels/ops.h (no (T,T) matrix is stored; lse saved). Buffers must
// be 16-byte aligned (the launchers return cudaErrorMisalignedAddress otherwise).
//
// Flash-attention-2 style, 4 warps per block. In the forward and dq kernels a warp owns M blocks
// of 16 query rows (kRowTiles: 2 at head size 64, a block covering 128 query rows; 1 at 128),
// which share every k and v fragment it loads, and the keys move in tiles of 64; the dk/dv kernel
// takes 64 key rows a block (16 a warp) and the queries in steps of kDkvRows. Scores,
// probabilities and accumulators stay in registers in the mma fragment layout; a C fragment of
// two adjacent 8-column tiles is the A fragment of the next product, so p and ds never go through
// shared memory; a warp's rows that every step multiplies (q; q and dout; k and v at head size
// 64) are loaded as A fragments once, and the backward takes its scores 32 columns at a time
// (half the registers; the same sums in the same order). Exponentials are the special function
// unit's ex2 of log2e-scaled scores, the scale folded into one fma. The launchers first round qkv
// (and, for the backward, dout) to 16-bit copies in the caller's scratch where they are given as
// fp32, one pass each; the kernels copy tiles of those into shared memory with cp.async
// (CopyTile) and read them with ldmatrix. The next key tile (forward, dq) or query tile (dk/dv)
// is in flight while the block multiplies the current one: kStages buffers (three at head size
// 64: one barrier a step), one cp.async group per tile step. A warp skips a key tile that lies
// wholly past its rows.
// Fixed loop orders and no atomics: results are bitwise reproducible.
//  - Forward: a block per (batch, head, query block); online softmax over the key tiles up to
//    the diagonal (row sums kept per thread, combined at the end).
//  - Backward, kernel 1: a block per (batch, head, query block): D_i = dout_i . out_i (fp32, to
//    scratch), dq = scale * sum_j ds_ij k_j with p and ds recomputed from lse.
//  - Backward, kernel 2: a block per (batch, kv head, key tile): dk, dv summed over the kv head's
//    query heads in ascending order and over the query tiles (of kDkvRows) from the diagonal on.
//  - With the QKV projection's bias gradient (bf16 dqkv), each block of both kernels also writes
//    the column sums of the rows it stores, as rounded (one row of parts per block, in a fixed
//    order), which the bias-gradient kernel then adds up per column.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/attention_scratch.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"
#include "kernels/cuda/ptx.cuh"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

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

// Issues the copy of rows [row0, row0 + ROWS) of a 16-bit HS-wide buffer (row stride `stride`
// elements, 16-byte aligned rows) into dst (rows kStride<HS> apart); rows >= T become zeros.
// Called by the whole block; lands after WaitCopies and a barrier.
template <int ROWS, int HS, typename T16>
__device__ __forceinline__ void CopyTile(T16* dst, const T16* src, size_t stride, int row0, int T) {
  constexpr int kChunks = HS / 8;  // 16-byte chunks per row
  static_assert(ROWS * kChunks % kThreads == 0, "tile does not split evenly over the block");
#pragma unroll
  for (int i = 0; i < ROWS * kChunks / kThreads; ++i) {
    const int idx = static_cast<int>(threadIdx.x) + i * kThreads;
    const int r = idx / kChunks, c = idx % kChunks;
    const int t = row0 + r;
    const T16* from = src + static_cast<size_t>(t < T ? t : 0) * stride + 8 * c;
    CopyAsync16(dst + r * kStride<HS> + 8 * c, from, t < T ? 16 : 0);
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

// Issues the copies of key rows [s0, s0 + kTile) of k and v into k_s and v_s.
template <int HS, typename T16>
__device__ __forceinline__ void CopyKeyTile(T16* k_s, T16* v_s, const Geometry<T16>& geo, int s0,
                                            int T) {
  CopyTile<kTile, HS>(k_s, geo.k, geo.C3, s0, T);
  CopyTile<kTile, HS>(v_s, geo.v, geo.C3, s0, T);
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
template <int HS, typename T16, typename Body>
__device__ __forceinline__ void ForEachKeyTile(T16* k_s, T16* v_s, const Geometry<T16>& geo,
                                               int rows_end, int warp_last, int T, Body&& body) {
  constexpr int kTileElems = kTile * kStride<HS>;
  const int last = (min(rows_end, T) - 1) / kTile * kTile;  // the last key tile's first row
  CopyKeyTile<HS>(k_s, v_s, geo, 0, T);
  CommitCopies();
  for (int s0 = 0, buf = 0; s0 <= last; s0 += kTile, buf = buf + 1 == kStages<HS> ? 0 : buf + 1) {
    if (s0 + kTile <= last) {
      const int next = buf + 1 == kStages<HS> ? 0 : buf + 1;
      CopyKeyTile<HS>(k_s + next * kTileElems, v_s + next * kTileElems, geo, s0 + kTile, T);
    }
    CommitCopies();  // possibly empty: one group per step either way
    WaitCopies<1>();
    __syncthreads();  // this tile's copies have landed; every thread is done with step i - 1
    if (s0 <= warp_last) body(k_s + buf * kTileElems, v_s + buf * kTileElems, s0);
    if constexpr (kStages<HS> < 3) __syncthreads();  // all are done with the buffer refilled next
  }
}

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

// ---------------------------------------------------------------------------------------------
// Forward. smem: q (kBlockRows), k (kStages buffers), v (kStages buffers).
template <int HS>
constexpr size_t kForwardSmem = kTileBytes<kBlockRows<kRowTiles<HS>>, HS> +
                                2 * StagedBytes<HS>(kTileBytes<kTile, HS>);

// O: the output's type (float, or __nv_bfloat16 rounded to nearest even).
template <typename T16, int HS, typename O>
__global__ void __launch_bounds__(kThreads, kMinBlocks<HS, kRowTiles<HS>>)
    TcForwardKernel(O* __restrict__ out, float* __restrict__ lse, const T16* __restrict__ qkv,
                    int T, int NH, int NKV, int tiles, float scale) {
  constexpr int S = kStride<HS>;
  constexpr int M = kRowTiles<HS>, R = kBlockRows<M>;
  extern __shared__ __align__(128) unsigned char smem[];
  T16* q_s = reinterpret_cast<T16*>(smem);
  T16* k_s = q_s + R * S;
  T16* v_s = k_s + kStages<HS> * kTile * S;

  const int heads = gridDim.x / tiles;
  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH, h = bh % NH;
  const Geometry<T16> geo = Locate<HS>(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const int t0 = tile * R;
  const int wrow = threadIdx.x / 32 * 16 * M;
  const float scale2 = scale * kLog2e;  // scores in log2 units

  CopyTile<R, HS>(q_s, geo.q, geo.C3, t0, T);
  float o[M][HS / 8][4];
  float m[M][2], l[M][2];  // rows FragRow(0), FragRow(2) of each row block
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) o[i][n][0] = o[i][n][1] = o[i][n][2] = o[i][n][3] = 0.0f;
    m[i][0] = m[i][1] = -INFINITY;
    l[i][0] = l[i][1] = 0.0f;
  }
  uint32_t q_f[M][HS / 16][4];  // the warp's query rows, loaded once the first tiles have landed
  const int warp_last = t0 + wrow + 16 * M - 1;
  const auto step = [&](const T16* k_t, const T16* v_t, int s0) {
    if (s0 == 0) {
#pragma unroll
      for (int i = 0; i < M; ++i) LoadRows<HS, S>(q_f[i], q_s, wrow + 16 * i);
    }
    float s[M][kTile / 8][4];
    WarpRowsBt<T16, M, kTile, HS, S>(s, q_f, k_t);
    if (s0 + kTile - 1 > t0 + wrow) {
#pragma unroll
      for (int i = 0; i < M; ++i) {
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            if (s0 + FragCol(n, e) > t0 + wrow + 16 * i + FragRow(e)) s[i][n][e] = -INFINITY;
          }
        }
      }
    }
#pragma unroll
    for (int i = 0; i < M; ++i) {
      float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int n = 0; n < kTile / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) row_max[e / 2] = fmaxf(row_max[e / 2], s[i][n][e]);
      }
      float corr[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        // The maximum of the scaled scores is the scaled maximum (scale2 > 0); m is finite from
        // the first tile on, as key 0 is never masked.
        const float m_new = fmaxf(m[i][r], QuadMax(row_max[r]) * scale2);
        corr[r] = Exp2(m[i][r] - m_new);
        m[i][r] = m_new;
        l[i][r] *= corr[r];
      }
#pragma unroll
      for (int n = 0; n < kTile / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[i][n][e] = Exp2(fmaf(s[i][n][e], scale2, -m[i][e / 2]));
          l[i][e / 2] += s[i][n][e];
        }
      }
#pragma unroll
      for (int n = 0; n < HS / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) o[i][n][e] *= corr[e / 2];
      }
    }
    WarpAccumulatePB<T16, M, HS, kTile, S>(o, s, v_t);
  };
  ForEachKeyTile<HS>(k_s, v_s, geo, t0 + R, warp_last, T, step);
  const size_t C = static_cast<size_t>(NH) * HS;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = QuadSum(l[i][r]);
      inv[r] = 1.0f / sum;
      const int t = t0 + wrow + 16 * i + FragRow(2 * r);
      if (threadIdx.x % 4 == 0 && t < T) {
        lse[static_cast<size_t>(bh) * T + t] = (m[i][r] + log2f(sum)) * kLn2;
      }
    }
    StoreRows<HS>(out + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS, C, o[i],
                  t0 + wrow + 16 * i, T, inv[0], inv[1]);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, kernel 1 (dq). smem: q, dout (kBlockRows each), k, v (kStages buffers each). D reads
// dout and out (of the forward's type O); the products read the 16-bit values dout16 and qkv.
template <int HS>
constexpr size_t kDqSmem = 2 * kTileBytes<kBlockRows<kRowTiles<HS>>, HS> +
                           2 * StagedBytes<HS>(kTileBytes<kTile, HS>);

template <typename T16, int HS, typename O>
__global__ void __launch_bounds__(kThreads, kMinBlocks<HS, kRowTiles<HS>>)
    TcBackwardDqKernel(O* __restrict__ dqkv, float* __restrict__ d_scratch,
                       const O* __restrict__ dout, const T16* __restrict__ dout16,
                       const T16* __restrict__ qkv, const O* __restrict__ out,
                       const float* __restrict__ lse, int T, int NH, int NKV, int tiles,
                       float scale, float* __restrict__ q_parts) {
  constexpr int S = kStride<HS>;
  constexpr int M = kRowTiles<HS>, R = kBlockRows<M>;
  extern __shared__ __align__(128) unsigned char smem[];
  T16* q_s = reinterpret_cast<T16*>(smem);
  T16* do_s = q_s + R * S;
  T16* k_s = do_s + R * S;
  T16* v_s = k_s + kStages<HS> * kTile * S;

  const int heads = gridDim.x / tiles;
  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH, h = bh % NH;
  const Geometry<T16> geo = Locate<HS>(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * HS;
  const size_t head = static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS;
  const O* dout_h = dout + head;
  const O* out_h = out + head;
  const int t0 = tile * R;
  const int wrow = threadIdx.x / 32 * 16 * M;
  const float scale2 = scale * kLog2e;

  CopyTile<R, HS>(q_s, geo.q, geo.C3, t0, T);
  CopyTile<R, HS>(do_s, dout16 + head, C, t0, T);
  // D and lse (log2 units) of the thread's rows; a quad sums D over its 4 x HS/4 columns.
  float D[M][2], L[M][2];
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int t = t0 + wrow + 16 * i + FragRow(2 * r);
      float partial = 0.0f;
      L[i][r] = 0.0f;
      if (t < T) {
        const size_t off = static_cast<size_t>(t) * C + HS / 4 * (threadIdx.x % 4);
#pragma unroll
        for (int d = 0; d < HS / 4; d += 4) {
          const float4 x = LoadQuadAs(dout_h + off + d, 0);
          const float4 y = LoadQuadAs(out_h + off + d, 0);
          partial += x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
        }
        L[i][r] = lse[static_cast<size_t>(bh) * T + t] * kLog2e;
      }
      D[i][r] = QuadSum(partial);
      if (threadIdx.x % 4 == 0 && t < T) d_scratch[static_cast<size_t>(bh) * T + t] = D[i][r];
    }
  }
  float dq[M][HS / 8][4];
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) dq[i][n][0] = dq[i][n][1] = dq[i][n][2] = dq[i][n][3] = 0.0f;
  }
  uint32_t q_f[M][HS / 16][4], do_f[M][HS / 16][4];  // loaded once the first tiles have landed
  const int warp_last = t0 + wrow + 16 * M - 1;
  const auto step = [&](const T16* k_t, const T16* v_t, int s0) {
    if (s0 == 0) {
#pragma unroll
      for (int i = 0; i < M; ++i) {
        LoadRows<HS, S>(q_f[i], q_s, wrow + 16 * i);
        LoadRows<HS, S>(do_f[i], do_s, wrow + 16 * i);
      }
    }
    const bool diagonal = s0 + kTile - 1 > t0 + wrow;
    // The tile's keys kDqPart at a time: dq adds them in the same order as over the whole tile.
#pragma unroll
    for (int part = 0; part < kTile / kDqPart; ++part) {
      const int c0 = part * kDqPart;
      float s[M][kDqPart / 8][4], dp[M][kDqPart / 8][4];
      WarpRowsBt<T16, M, kDqPart, HS, S>(s, q_f, k_t + c0 * S);
      WarpRowsBt<T16, M, kDqPart, HS, S>(dp, do_f, v_t + c0 * S);
#pragma unroll
      for (int i = 0; i < M; ++i) {
#pragma unroll
        for (int n = 0; n < kDqPart / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const bool masked =
                diagonal && s0 + c0 + FragCol(n, e) > t0 + wrow + 16 * i + FragRow(e);
            const float p = masked ? 0.0f : Exp2(fmaf(s[i][n][e], scale2, -L[i][e / 2]));
            s[i][n][e] = p * (dp[i][n][e] - D[i][e / 2]);  // ds
          }
        }
      }
      WarpAccumulatePB<T16, M, HS, kDqPart, S>(dq, s, k_t + c0 * S);
    }
  };
  ForEachKeyTile<HS>(k_s, v_s, geo, t0 + R, warp_last, T, step);
#pragma unroll
  for (int i = 0; i < M; ++i) {
    StoreRows<HS>(dqkv + static_cast<size_t>(b) * T * geo.C3 + static_cast<size_t>(h) * HS, geo.C3,
                  dq[i], t0 + wrow + 16 * i, T, scale, scale);
  }
  if (q_parts != nullptr) {  // bf16 dqkv (the launcher's contract)
    float sums[HS / 8][2] = {};
#pragma unroll
    for (int i = 0; i < M; ++i) AddRoundedColumns<HS>(sums, dq[i], t0 + wrow + 16 * i, T, scale);
    StoreColumnSums<HS>(q_parts + (static_cast<size_t>(b) * tiles + tile) * C + h * HS, sums,
                        reinterpret_cast<float*>(smem));
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, kernel 2 (dk, dv). smem: k, v (kTile rows), q, dout (kDkvRows rows, kStages buffers
// each) (16-bit); lse (log2 units) and D of the query rows (kStages buffers each).
template <int HS>
constexpr size_t kDkvSmem = 2 * kTileBytes<kTile, HS> +
                            2 * StagedBytes<HS>(kTileBytes<kDkvRows<HS>, HS> +
                                                kDkvRows<HS> * sizeof(float));

template <typename T16, int HS, typename O>
__global__ void __launch_bounds__(kThreads, kMinBlocks<HS, 1>)
    TcBackwardDkvKernel(O* __restrict__ dqkv, const float* __restrict__ d_scratch,
                        const T16* __restrict__ dout16, const T16* __restrict__ qkv,
                        const float* __restrict__ lse, int T, int NH, int NKV, int tiles,
                        float scale, float* __restrict__ kv_parts) {
  constexpr int S = kStride<HS>;
  constexpr int QR = kDkvRows<HS>;
  extern __shared__ __align__(128) unsigned char smem[];
  T16* k_s = reinterpret_cast<T16*>(smem);
  T16* v_s = k_s + kTile * S;
  T16* q_buf = v_s + kTile * S;                                              // kStages x QR rows
  T16* do_buf = q_buf + kStages<HS> * QR * S;                                // kStages x QR rows
  float* lse_buf = reinterpret_cast<float*>(do_buf + kStages<HS> * QR * S);  // kStages x QR
  float* d_buf = lse_buf + kStages<HS> * QR;                                 // kStages x QR

  const int kv_heads = gridDim.x / tiles;
  const int bg = blockIdx.x % kv_heads;
  const int tile = static_cast<int>(blockIdx.x / kv_heads);  // heaviest (first) tiles first
  const int b = bg / NKV, g = bg % NKV;
  const int group = NH / NKV;
  const Geometry<T16> geo0 = Locate<HS>(qkv, b, g * group, g, T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * HS;
  const int s0 = tile * kTile;
  const int wrow = threadIdx.x / 32 * 16;
  const float scale2 = scale * kLog2e;

  // Steps: the kv head's query heads in ascending order, each over the query tiles t0 = s0,
  // s0 + QR, ... < T. Step i's tiles go to buffer i % kStages.
  const int per_head = (T - s0 + QR - 1) / QR;
  const int steps = group * per_head;
  const auto issue = [&](int i) {
    const int h = g * group + i / per_head;
    const int t0 = s0 + i % per_head * QR;
    const int buf = i % kStages<HS>;
    const Geometry<T16> geo = Locate<HS>(qkv, b, h, g, T, NH, NKV);
    CopyTile<QR, HS>(q_buf + buf * QR * S, geo.q, geo.C3, t0, T);
    CopyTile<QR, HS>(do_buf + buf * QR * S,
                     dout16 + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS, C, t0,
                     T);
    if (threadIdx.x < QR) {  // read by the step after a barrier; p = 0 past T
      const size_t bh = static_cast<size_t>(b) * NH + h;
      const int t = t0 + static_cast<int>(threadIdx.x);
      lse_buf[buf * QR + threadIdx.x] = t < T ? lse[bh * T + t] * kLog2e : INFINITY;
      d_buf[buf * QR + threadIdx.x] = t < T ? d_scratch[bh * T + t] : 0.0f;
    }
  };
  CopyKeyTile<HS>(k_s, v_s, geo0, s0, T);
  issue(0);
  CommitCopies();
  float dk[1][HS / 8][4], dv[1][HS / 8][4];
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[0][n][e] = dv[0][n][e] = 0.0f;
  }
  // At head size 64 the warp's k and v rows stay in registers (as A fragments) for every step.
  constexpr bool kKeepKv = HS <= 64;
  uint32_t k_f[1][kKeepKv ? HS / 16 : 1][4], v_f[1][kKeepKv ? HS / 16 : 1][4];
  for (int i = 0; i < steps; ++i) {
    if (i + 1 < steps) issue(i + 1);
    CommitCopies();
    WaitCopies<1>();
    __syncthreads();  // step i's tiles and row values have landed; all are done with step i - 1
    if constexpr (kKeepKv) {
      if (i == 0) {
        LoadRows<HS, S>(k_f[0], k_s, wrow);
        LoadRows<HS, S>(v_f[0], v_s, wrow);
      }
    }
    const int t0 = s0 + i % per_head * QR;
    const int buf = i % kStages<HS>;
    const bool diagonal = t0 < s0 + kTile;
    // The step's query rows kDkvPart at a time: dk and dv add them in the same order as over the
    // whole step.
#pragma unroll
    for (int part = 0; part < QR / kDkvPart; ++part) {
      const int r0 = part * kDkvPart;
      const T16* q_s = q_buf + (buf * QR + r0) * S;
      const T16* do_s = do_buf + (buf * QR + r0) * S;
      const float* lse_s = lse_buf + buf * QR + r0;
      const float* d_s = d_buf + buf * QR + r0;
      // s^T (keys x queries) = k q^T; dp^T = v dout^T.
      float st[1][kDkvPart / 8][4], dpt[1][kDkvPart / 8][4];
      if constexpr (kKeepKv) {
        WarpRowsBt<T16, 1, kDkvPart, HS, S>(st, k_f, q_s);
        WarpRowsBt<T16, 1, kDkvPart, HS, S>(dpt, v_f, do_s);
      } else {
        uint32_t fa[1][HS / 16][4];
        LoadRows<HS, S>(fa[0], k_s, wrow);
        WarpRowsBt<T16, 1, kDkvPart, HS, S>(st, fa, q_s);
        LoadRows<HS, S>(fa[0], v_s, wrow);
        WarpRowsBt<T16, 1, kDkvPart, HS, S>(dpt, fa, do_s);
      }
#pragma unroll
      for (int n = 0; n < kDkvPart / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = FragCol(n, e);
          const bool masked = diagonal && t0 + r0 + c < s0 + wrow + FragRow(e);
          const float p = masked ? 0.0f : Exp2(fmaf(st[0][n][e], scale2, -lse_s[c]));
          st[0][n][e] = p;
          dpt[0][n][e] = p * (dpt[0][n][e] - d_s[c]);  // ds^T
        }
      }
      WarpAccumulatePB<T16, 1, HS, kDkvPart, S>(dv, st, do_s);
      WarpAccumulatePB<T16, 1, HS, kDkvPart, S>(dk, dpt, q_s);
    }
    if constexpr (kStages<HS> < 3) __syncthreads();  // all are done with the buffer refilled next
  }
  O* rows = dqkv + static_cast<size_t>(b) * T * geo0.C3;
  StoreRows<HS>(rows + static_cast<size_t>(NH + g) * HS, geo0.C3, dk[0], s0 + wrow, T, scale,
                scale);
  StoreRows<HS>(rows + static_cast<size_t>(NH + NKV + g) * HS, geo0.C3, dv[0], s0 + wrow, T, 1.0f,
                1.0f);
  if (kv_parts != nullptr) {  // bf16 dqkv (the launcher's contract)
    float* part = kv_parts + (static_cast<size_t>(b) * tiles + tile) * 2 * NKV * HS + g * HS;
    float sums[HS / 8][2] = {};
    AddRoundedColumns<HS>(sums, dk[0], s0 + wrow, T, scale);
    StoreColumnSums<HS>(part, sums, reinterpret_cast<float*>(smem));
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) sums[n][0] = sums[n][1] = 0.0f;
    AddRoundedColumns<HS>(sums, dv[0], s0 + wrow, T, 1.0f);
    StoreColumnSums<HS>(part + NKV * HS, sums, reinterpret_cast<float*>(smem));
  }
}

template <typename Kernel>
cudaError_t AllowSmem(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

// The scratch's parts (kernels/attention_scratch.h).
struct Scratch {
  float* d;
  uint16_t* qkv16;
  uint16_t* dout16;
};

Scratch Carve(void* scratch, int B, int T, int NH, int NKV, int hs) {
  auto* base = static_cast<unsigned char*>(scratch);
  const AttentionScratchLayout l = TensorCoreAttentionScratch(B, T, NH, NKV, hs);
  return {reinterpret_cast<float*>(base + l.d_offset),
          reinterpret_cast<uint16_t*>(base + l.qkv16_offset),
          reinterpret_cast<uint16_t*>(base + l.dout16_offset)};
}

template <typename T16>
cudaError_t To16(uint16_t* out, const float* in, size_t n, cudaStream_t stream) {
  if constexpr (std::is_same_v<T16, __half>) {
    return LaunchToFp16(out, in, n, stream);
  } else {
    return LaunchToBf16(out, in, n, stream);
  }
}

// The 16-bit qkv the kernels read: qkv16 as given, or else qkv converted into the scratch.
template <typename T16>
cudaError_t Qkv16(const T16** q16, const float* qkv, const uint16_t* qkv16, const Scratch& sc,
                  size_t n, cudaStream_t stream) {
  if (qkv16 != nullptr) {
    *q16 = reinterpret_cast<const T16*>(qkv16);
    return cudaSuccess;
  }
  *q16 = reinterpret_cast<const T16*>(sc.qkv16);
  return To16<T16>(sc.qkv16, qkv, n, stream);
}

template <typename T16, int HS, typename O>
cudaError_t Forward(O* out, float* lse, const float* qkv, const uint16_t* qkv16, int B, int T,
                    int NH, int NKV, void* scratch, cudaStream_t stream) {
  const int tiles = QueryBlocks<HS>(T);
  const Scratch sc = Carve(scratch, B, T, NH, NKV, HS);
  const T16* q16 = nullptr;
  if (cudaError_t e = Qkv16<T16>(&q16, qkv, qkv16, sc,
                                 static_cast<size_t>(B) * T * (NH + 2 * NKV) * HS, stream);
      e != cudaSuccess) {
    return e;
  }
  if (cudaError_t e = AllowSmem(TcForwardKernel<T16, HS, O>, kForwardSmem<HS>); e != cudaSuccess) {
    return e;
  }
  TcForwardKernel<T16, HS, O><<<tiles * B * NH, kThreads, kForwardSmem<HS>, stream>>>(
      out, lse, q16, T, NH, NKV, tiles, 1.0f / sqrtf(static_cast<float>(HS)));
  return cudaGetLastError();
}

// The 16-bit dout the kernels' products read: dout itself where it is bf16 (then so are the
// kernels' operands), or else dout converted into the scratch.
template <typename T16>
cudaError_t Dout16(const T16** d16, const __nv_bfloat16* dout, const Scratch&, size_t,
                   cudaStream_t) {
  static_assert(std::is_same_v<T16, __nv_bfloat16>);
  *d16 = dout;
  return cudaSuccess;
}
template <typename T16>
cudaError_t Dout16(const T16** d16, const float* dout, const Scratch& sc, size_t n,
                   cudaStream_t stream) {
  *d16 = reinterpret_cast<const T16*>(sc.dout16);
  return To16<T16>(sc.dout16, dout, n, stream);
}

// O: the type of dout, out and dqkv (float, or bf16 for all three).
// With dbias (bf16 dqkv only) the kernels write the column sums of their blocks' rows to
// bias_parts (TensorCoreAttentionBiasPartsFloats: B * query blocks rows of NH * HS, then
// B * key tiles rows of 2 * NKV * HS), which two bias-gradient launches then add into dbias.
template <typename T16, int HS, typename O>
cudaError_t Backward(O* dqkv, const O* dout, const float* qkv, const uint16_t* qkv16_in,
                     const O* out, const float* lse, int B, int T, int NH, int NKV, void* scratch,
                     float* dbias, float* bias_parts, cudaStream_t stream) {
  const int tiles = QueryBlocks<HS>(T);
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const Scratch sc = Carve(scratch, B, T, NH, NKV, HS);
  const size_t rows = static_cast<size_t>(B) * T;
  const T16* qkv16 = nullptr;
  if (cudaError_t e = Qkv16<T16>(&qkv16, qkv, qkv16_in, sc, rows * (NH + 2 * NKV) * HS, stream);
      e != cudaSuccess) {
    return e;
  }
  const T16* dout16 = nullptr;
  if (cudaError_t e = Dout16<T16>(&dout16, dout, sc, rows * NH * HS, stream); e != cudaSuccess) {
    return e;
  }
  if (cudaError_t e = AllowSmem(TcBackwardDqKernel<T16, HS, O>, kDqSmem<HS>); e != cudaSuccess) {
    return e;
  }
  if (cudaError_t e = AllowSmem(TcBackwardDkvKernel<T16, HS, O>, kDkvSmem<HS>); e != cudaSuccess) {
    return e;
  }
  const int key_tiles = (T + kTile - 1) / kTile;
  float* q_parts = dbias != nullptr ? bias_parts : nullptr;
  float* kv_parts =
      dbias != nullptr ? bias_parts + static_cast<size_t>(B) * tiles * NH * HS : nullptr;
  TcBackwardDqKernel<T16, HS, O><<<tiles * B * NH, kThreads, kDqSmem<HS>, stream>>>(
      dqkv, sc.d, dout, dout16, qkv16, out, lse, T, NH, NKV, tiles, scale, q_parts);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  TcBackwardDkvKernel<T16, HS, O><<<key_tiles * B * NKV, kThreads, kDkvSmem<HS>, stream>>>(
      dqkv, sc.d, dout16, qkv16, lse, T, NH, NKV, key_tiles, scale, kv_parts);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess || dbias == nullptr) return e;
  if (cudaError_t e =
          LaunchBiasGradient(dbias, q_parts, B * tiles, NH * HS, nullptr, 0, nullptr, stream);
      e != cudaSuccess) {
    return e;
  }
  return LaunchBiasGradient(dbias + static_cast<size_t>(NH) * HS, kv_parts, B * key_tiles,
                            2 * NKV * HS, nullptr, 0, nullptr, stream);
}

template <typename T16, typename O>
cudaError_t ForwardFor(int hs, O* out, float* lse, const float* qkv, const uint16_t* qkv16, int B,
                       int T, int NH, int NKV, void* scratch, cudaStream_t stream) {
  return hs == 64 ? Forward<T16, 64>(out, lse, qkv, qkv16, B, T, NH, NKV, scratch, stream)
                  : Forward<T16, 128>(out, lse, qkv, qkv16, B, T, NH, NKV, scratch, stream);
}

template <typename T16, typename O>
cudaError_t BackwardFor(int hs, O* dqkv, const O* dout, const float* qkv, const uint16_t* qkv16,
                        const O* out, const float* lse, int B, int T, int NH, int NKV,
                        void* scratch, float* dbias, float* bias_parts, cudaStream_t stream) {
  return hs == 64 ? Backward<T16, 64>(dqkv, dout, qkv, qkv16, out, lse, B, T, NH, NKV, scratch,
                                      dbias, bias_parts, stream)
                  : Backward<T16, 128>(dqkv, dout, qkv, qkv16, out, lse, B, T, NH, NKV, scratch,
                                       dbias, bias_parts, stream);
}

}  // namespace

bool TensorCoreAttentionSupported(int hs) { return hs == 64 || hs == 128; }

size_t TensorCoreAttentionScratchBytes(int B, int T, int NH, int NKV, int hs,
                                       bool sixteen_bit_inputs) {
  const AttentionScratchLayout l = TensorCoreAttentionScratch(B, T, NH, NKV, hs);
  return sixteen_bit_inputs ? l.sums_bytes : l.bytes;
}

cudaError_t LaunchTensorCoreAttentionForward(float* out, uint16_t* out16, float* lse,
                                             const float* qkv, const uint16_t* qkv16, int B, int T,
                                             int NH, int NKV, int hs, bool fp16, void* scratch,
                                             cudaStream_t stream) {
  if (B <= 0 || T <= 0) return cudaSuccess;
  if (!TensorCoreAttentionSupported(hs) || (out16 != nullptr) == (out != nullptr) ||
      (out16 != nullptr && fp16)) {
    return cudaErrorInvalidValue;
  }
  if (!Aligned16(out != nullptr ? static_cast<void*>(out) : out16) ||
      !Aligned16(qkv16 != nullptr ? static_cast<const void*>(qkv16) : qkv) ||
      reinterpret_cast<uintptr_t>(scratch) % 256 != 0) {
    return cudaErrorMisalignedAddress;
  }
  if (out16 != nullptr) {
    return ForwardFor<__nv_bfloat16>(hs, reinterpret_cast<__nv_bfloat16*>(out16), lse, qkv, qkv16,
                                     B, T, NH, NKV, scratch, stream);
  }
  return fp16 ? ForwardFor<__half>(hs, out, lse, qkv, qkv16, B, T, NH, NKV, scratch, stream)
              : ForwardFor<__nv_bfloat16>(hs, out, lse, qkv, qkv16, B, T, NH, NKV, scratch, stream);
}

size_t TensorCoreAttentionBiasPartsFloats(int B, int T, int NH, int NKV, int hs) {
  if (B <= 0 || T <= 0 || !TensorCoreAttentionSupported(hs)) return 0;
  const int query_blocks = hs == 64 ? QueryBlocks<64>(T) : QueryBlocks<128>(T);
  const int key_tiles = (T + kTile - 1) / kTile;
  return static_cast<size_t>(B) * hs *
         (static_cast<size_t>(query_blocks) * NH + static_cast<size_t>(key_tiles) * 2 * NKV);
}

cudaError_t LaunchTensorCoreAttentionBackward(float* dqkv, uint16_t* dqkv16, const float* dout,
                                              const uint16_t* dout16, const float* qkv,
                                              const uint16_t* qkv16, const float* out,
                                              const uint16_t* out16, const float* lse, int B, int T,
                                              int NH, int NKV, int hs, bool fp16, void* scratch,
                                              float* dbias, float* bias_parts,
                                              cudaStream_t stream) {
  if (B <= 0 || T <= 0) return cudaSuccess;
  if (!TensorCoreAttentionSupported(hs) || (out16 != nullptr) == (out != nullptr) ||
      (dqkv16 != nullptr) != (out16 != nullptr) || (dqkv != nullptr) != (out != nullptr) ||
      (dout16 != nullptr) != (out16 != nullptr) || (dout != nullptr) != (out != nullptr) ||
      (out16 != nullptr && fp16) || (dbias != nullptr) != (bias_parts != nullptr) ||
      (dbias != nullptr && dqkv16 == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if (!Aligned16(dqkv != nullptr ? static_cast<void*>(dqkv) : dqkv16) ||
      !Aligned16(dout != nullptr ? static_cast<const void*>(dout) : dout16) ||
      !Aligned16(qkv16 != nullptr ? static_cast<const void*>(qkv16) : qkv) ||
      !Aligned16(out != nullptr ? static_cast<const void*>(out) : out16) ||
      reinterpret_cast<uintptr_t>(scratch) % 256 != 0) {
    return cudaErrorMisalignedAddress;
  }
  if (out16 != nullptr) {
    return BackwardFor<__nv_bfloat16>(hs, reinterpret_cast<__nv_bfloat16*>(dqkv16),
                                      reinterpret_cast<const __nv_bfloat16*>(dout16), qkv, qkv16,
                                      reinterpret_cast<const __nv_bfloat16*>(out16), lse, B, T, NH,
                                      NKV, scratch, dbias, bias_parts, stream);
  }
  return fp16 ? BackwardFor<__half>(hs, dqkv, dout, qkv, qkv16, out, lse, B, T, NH, NKV, scratch,
                                    nullptr, nullptr, stream)
              : BackwardFor<__nv_bfloat16>(hs, dqkv, dout, qkv, qkv16, out, lse, B, T, NH, NKV,
                                           scratch, nullptr, nullptr, stream);
}

}  // namespace spillway::kernels::cuda
