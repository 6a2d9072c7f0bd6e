// Causal multi-head and grouped-query attention, fp32, flash-style: no (T,T) matrix is stored.
// The qkv layout is that of kernels/ops.h: per row NH query heads, NKV key heads, NKV value
// heads, each hs wide; query head h reads kv head h / (NH / NKV). Plain multi-head attention is
// the case NKV == NH (row width 3C), which runs the same kernels on the same addresses.
//
// Every kernel works on one (batch, head) pair and one tile of kTile = 32 rows (query rows or
// key rows), with 8 warps of 4 rows each. The other operand is streamed through shared memory
// in tiles of 32 rows; inside a tile, lane j of a warp owns row j of the streamed tile for the
// dot products, and lane l owns head dimensions d = l + 32 c (c < kChunks) of the warp's
// accumulators, so every reduction runs in a fixed order and the results are bitwise
// reproducible (no atomics).
//
//  - Forward: query tiles; online softmax over key tiles 0..(diagonal), writes out and lse.
//  - Backward, kernel 1: query tiles; D_i = dout_i . out_i (saved to scratch) and
//    dq_i = scale * sum_j ds_ij k_j, ds_ij = p_ij (dout_i . v_j - D_i), p_ij = exp(s_ij - lse_i).
//  - Backward, kernel 2: key tiles of one kv head; dk_j = scale * sum_{i>=j} ds_ij q_i and
//    dv_j = sum_{i>=j} p_ij dout_i, summed over the kv head's query heads in ascending order,
//    and over the query tiles i >= j in order, recomputing p and ds.
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

constexpr int kTile = 32;  // rows per tile: a warp's width
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = kTile / kWarps;  // 4
constexpr int kMaxHeadSize = 256;             // kChunks <= 8
constexpr unsigned kFullMask = 0xffffffffu;
constexpr size_t kDefaultSmemBytes = 48 * 1024;

__device__ __forceinline__ float WarpSum(float x) {
  // xor butterfly: every lane ends with the same, order-fixed sum.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}

__device__ __forceinline__ float WarpMax(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}

// dst[r * ld + d] = src[(row0 + r) * stride + d] for r < kTile, d < hs; rows >= T are zero.
// Called by the whole block.
__device__ __forceinline__ void LoadTile(float* dst, int ld, const float* src, size_t stride,
                                         int row0, int T, int hs) {
  for (int idx = threadIdx.x; idx < kTile * hs; idx += kThreads) {
    const int r = idx / hs;
    const int d = idx - r * hs;
    const int t = row0 + r;
    dst[r * ld + d] = t < T ? src[static_cast<size_t>(t) * stride + d] : 0.0f;
  }
}

// Odd row stride for tiles that lane j reads row-wise (lane j at row j): conflict-free banks.
__host__ __device__ __forceinline__ int PaddedStride(int hs) { return hs | 1; }

// ---------------------------------------------------------------------------------------------
// Forward. Grid: tiles * heads blocks, heaviest (last) query tiles first.
// smem: q (kTile, hs), k (kTile, hs|1), v (kTile, hs).
template <int kChunks>
__global__ void __launch_bounds__(kThreads)
    AttentionForwardKernel(float* __restrict__ out, float* __restrict__ lse,
                           const float* __restrict__ qkv, int T, int NH, int NKV, int hs, int heads,
                           int tiles, float scale) {
  extern __shared__ float smem[];
  const int kld = PaddedStride(hs);
  float* q_s = smem;
  float* k_s = q_s + kTile * hs;
  float* v_s = k_s + kTile * kld;

  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH;
  const int h = bh % NH;
  const int t0 = tile * kTile;
  const size_t C = static_cast<size_t>(NH) * hs;             // out row width
  const size_t C3 = static_cast<size_t>(NH + 2 * NKV) * hs;  // qkv row width
  const float* row_base = qkv + static_cast<size_t>(b) * T * C3;
  const float* q_base = row_base + static_cast<size_t>(h) * hs;
  const float* k_base = row_base + static_cast<size_t>(NH + h / (NH / NKV)) * hs;
  const float* v_base = k_base + static_cast<size_t>(NKV) * hs;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int row0 = warp * kRowsPerWarp;  // the warp's first row within the tile
  const int t_end = min(T, t0 + kTile);  // rows [t0, t_end) are real
  // The warp's last real row (below t0 + row0 when it has none).
  const int warp_last = min(t_end - 1, t0 + row0 + kRowsPerWarp - 1);

  LoadTile(q_s, hs, q_base, C3, t0, T, hs);

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kChunks];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) acc[r][c] = 0.0f;
  }

  for (int s0 = 0; s0 < t_end; s0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and, first time, q_s is loaded)
    LoadTile(k_s, kld, k_base, C3, s0, T, hs);
    LoadTile(v_s, hs, v_base, C3, s0, T, hs);
    __syncthreads();

    // Lane j: scaled scores of the warp's rows against key s0 + j.
    float sc[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) sc[r] = 0.0f;
    const float* krow = k_s + lane * kld;
    const float* qrows = q_s + row0 * hs;
    for (int d = 0; d < hs; ++d) {
      const float kd = krow[d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) sc[r] = fmaf(qrows[r * hs + d], kd, sc[r]);
    }
    const int s = s0 + lane;
    float p[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int t = t0 + row0 + r;
      const bool valid = t < T && s <= t;  // implies s < T
      const float x = valid ? sc[r] * scale : -INFINITY;
      const float m_new = fmaxf(m[r], WarpMax(x));
      p[r] = valid ? expf(x - m_new) : 0.0f;
      // m_new is -inf only for padding rows (t >= T): keep them at zero instead of NaN.
      const float corr = m_new == -INFINITY ? 1.0f : expf(m[r] - m_new);
      l[r] = l[r] * corr + WarpSum(p[r]);
      m[r] = m_new;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) acc[r][c] *= corr;
    }
    // acc += p v over the tile's keys; keys past the warp's last row have p = 0 for all rows.
    const int jn = min(kTile, warp_last - s0 + 1);
    for (int j = 0; j < jn; ++j) {
      float vj[kChunks];
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + 32 * c;
        vj[c] = d < hs ? v_s[j * hs + d] : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float pj = __shfl_sync(kFullMask, p[r], j);
#pragma unroll
        for (int c = 0; c < kChunks; ++c) acc[r][c] = fmaf(pj, vj[c], acc[r][c]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = t0 + row0 + r;
    if (t >= T) continue;
    const float inv_l = 1.0f / l[r];
    float* o = out + (static_cast<size_t>(b) * T + t) * C + static_cast<size_t>(h) * hs;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < hs) o[d] = acc[r][c] * inv_l;
    }
    if (lane == 0) lse[static_cast<size_t>(bh) * T + t] = m[r] + logf(l[r]);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward kernel 1: D and dq. Grid as the forward.
// smem: q (kTile, hs), dout (kTile, hs), k (kTile, hs|1), v (kTile, hs|1).
template <int kChunks>
__global__ void __launch_bounds__(kThreads)
    AttentionBackwardQueryKernel(float* __restrict__ dqkv, float* __restrict__ dsum,
                                 const float* __restrict__ dout, const float* __restrict__ qkv,
                                 const float* __restrict__ out, const float* __restrict__ lse,
                                 int T, int NH, int NKV, int hs, int heads, int tiles,
                                 float scale) {
  extern __shared__ float smem[];
  const int kld = PaddedStride(hs);
  float* q_s = smem;
  float* g_s = q_s + kTile * hs;
  float* k_s = g_s + kTile * hs;
  float* v_s = k_s + kTile * kld;

  const int bh = blockIdx.x % heads;
  const int tile = tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int b = bh / NH;
  const int h = bh % NH;
  const int t0 = tile * kTile;
  const size_t C = static_cast<size_t>(NH) * hs;
  const size_t C3 = static_cast<size_t>(NH + 2 * NKV) * hs;
  const size_t head_off = static_cast<size_t>(h) * hs;
  const float* row_base = qkv + static_cast<size_t>(b) * T * C3;
  const float* q_base = row_base + head_off;
  const float* k_base = row_base + static_cast<size_t>(NH + h / (NH / NKV)) * hs;
  const float* v_base = k_base + static_cast<size_t>(NKV) * hs;
  const float* g_base = dout + static_cast<size_t>(b) * T * C + head_off;
  const float* o_base = out + static_cast<size_t>(b) * T * C + head_off;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int row0 = warp * kRowsPerWarp;
  const int t_end = min(T, t0 + kTile);
  const int warp_last = min(t_end - 1, t0 + row0 + kRowsPerWarp - 1);

  LoadTile(q_s, hs, q_base, C3, t0, T, hs);
  LoadTile(g_s, hs, g_base, C, t0, T, hs);

  // D_i = dout_i . out_i and lse_i of the warp's rows (read from global memory).
  float D[kRowsPerWarp], L[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = t0 + row0 + r;
    float part = 0.0f;
    if (t < T) {
      const float* g = g_base + static_cast<size_t>(t) * C;
      const float* o = o_base + static_cast<size_t>(t) * C;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + 32 * c;
        if (d < hs) part = fmaf(g[d], o[d], part);
      }
    }
    D[r] = WarpSum(part);
    L[r] = t < T ? lse[static_cast<size_t>(bh) * T + t] : 0.0f;
    if (t < T && lane == 0) dsum[static_cast<size_t>(bh) * T + t] = D[r];
  }

  float dq[kRowsPerWarp][kChunks];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) dq[r][c] = 0.0f;
  }

  for (int s0 = 0; s0 < t_end; s0 += kTile) {
    __syncthreads();
    LoadTile(k_s, kld, k_base, C3, s0, T, hs);
    LoadTile(v_s, kld, v_base, C3, s0, T, hs);
    __syncthreads();

    // Lane j: q_i . k_j and dout_i . v_j for the warp's rows i, key j = s0 + lane.
    float sc[kRowsPerWarp], dp[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) sc[r] = dp[r] = 0.0f;
    const float* krow = k_s + lane * kld;
    const float* vrow = v_s + lane * kld;
    const float* qrows = q_s + row0 * hs;
    const float* grows = g_s + row0 * hs;
    for (int d = 0; d < hs; ++d) {
      const float kd = krow[d];
      const float vd = vrow[d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        sc[r] = fmaf(qrows[r * hs + d], kd, sc[r]);
        dp[r] = fmaf(grows[r * hs + d], vd, dp[r]);
      }
    }
    const int s = s0 + lane;
    float ds[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int t = t0 + row0 + r;
      const bool valid = t < T && s <= t;
      const float p = valid ? expf(sc[r] * scale - L[r]) : 0.0f;
      ds[r] = p * (dp[r] - D[r]);
    }
    // dq_i += ds_ij k_j, j ascending.
    const int jn = min(kTile, warp_last - s0 + 1);
    for (int j = 0; j < jn; ++j) {
      float kj[kChunks];
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + 32 * c;
        kj[c] = d < hs ? k_s[j * kld + d] : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float dsj = __shfl_sync(kFullMask, ds[r], j);
#pragma unroll
        for (int c = 0; c < kChunks; ++c) dq[r][c] = fmaf(dsj, kj[c], dq[r][c]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = t0 + row0 + r;
    if (t >= T) continue;
    float* dq_row = dqkv + (static_cast<size_t>(b) * T + t) * C3 + head_off;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < hs) dq_row[d] = dq[r][c] * scale;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward kernel 2: dk and dv. Grid: tiles * kv_heads blocks over the key tiles of each
// (batch, kv head), heaviest (first) key tiles first. smem: k (kTile, hs), v (kTile, hs),
// q (kTile, hs|1), dout (kTile, hs|1), lse (kTile), D (kTile).
template <int kChunks>
__global__ void __launch_bounds__(kThreads)
    AttentionBackwardKeyKernel(float* __restrict__ dqkv, const float* __restrict__ dsum,
                               const float* __restrict__ dout, const float* __restrict__ qkv,
                               const float* __restrict__ lse, int T, int NH, int NKV, int hs,
                               int kv_heads, float scale) {
  extern __shared__ float smem[];
  const int qld = PaddedStride(hs);
  float* k_s = smem;
  float* v_s = k_s + kTile * hs;
  float* q_s = v_s + kTile * hs;
  float* g_s = q_s + kTile * qld;
  float* l_s = g_s + kTile * qld;
  float* d_s = l_s + kTile;

  const int bg = blockIdx.x % kv_heads;
  const int tile = static_cast<int>(blockIdx.x / kv_heads);
  const int b = bg / NKV;
  const int g = bg % NKV;
  const int group = NH / NKV;
  const int s0 = tile * kTile;
  const size_t C = static_cast<size_t>(NH) * hs;
  const size_t C3 = static_cast<size_t>(NH + 2 * NKV) * hs;
  const size_t k_off = static_cast<size_t>(NH + g) * hs;
  const size_t v_off = k_off + static_cast<size_t>(NKV) * hs;
  const float* row_base = qkv + static_cast<size_t>(b) * T * C3;
  const float* k_base = row_base + k_off;
  const float* v_base = row_base + v_off;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int row0 = warp * kRowsPerWarp;
  const int key0 = s0 + row0;  // the warp's first key

  LoadTile(k_s, hs, k_base, C3, s0, T, hs);
  LoadTile(v_s, hs, v_base, C3, s0, T, hs);

  float dk[kRowsPerWarp][kChunks], dv[kRowsPerWarp][kChunks];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) dk[r][c] = dv[r][c] = 0.0f;
  }

  // The kv head's query heads in ascending order, all adding into the same dk, dv.
  for (int h = g * group; h < (g + 1) * group; ++h) {
    const size_t head_off = static_cast<size_t>(h) * hs;
    const float* q_base = row_base + head_off;
    const float* g_base = dout + static_cast<size_t>(b) * T * C + head_off;
    const size_t bh = static_cast<size_t>(b) * NH + h;
    const float* lse_bh = lse + bh * T;
    const float* dsum_bh = dsum + bh * T;
    for (int i0 = s0; i0 < T; i0 += kTile) {
      __syncthreads();
      LoadTile(q_s, qld, q_base, C3, i0, T, hs);
      LoadTile(g_s, qld, g_base, C, i0, T, hs);
      if (threadIdx.x < kTile) {
        const int i = i0 + threadIdx.x;
        l_s[threadIdx.x] = i < T ? lse_bh[i] : 0.0f;
        d_s[threadIdx.x] = i < T ? dsum_bh[i] : 0.0f;
      }
      __syncthreads();

      // Lane i: q_i . k_j and dout_i . v_j for query i = i0 + lane and the warp's keys j.
      float sc[kRowsPerWarp], dp[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) sc[r] = dp[r] = 0.0f;
      const float* qrow = q_s + lane * qld;
      const float* grow = g_s + lane * qld;
      const float* krows = k_s + row0 * hs;
      const float* vrows = v_s + row0 * hs;
      for (int d = 0; d < hs; ++d) {
        const float qd = qrow[d];
        const float gd = grow[d];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) {
          sc[r] = fmaf(qd, krows[r * hs + d], sc[r]);
          dp[r] = fmaf(gd, vrows[r * hs + d], dp[r]);
        }
      }
      const int i = i0 + lane;
      const float lse_i = l_s[lane];
      const float d_i = d_s[lane];
      float p[kRowsPerWarp], ds[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const bool valid = i < T && i >= key0 + r;  // implies key < T
        p[r] = valid ? expf(sc[r] * scale - lse_i) : 0.0f;
        ds[r] = p[r] * (dp[r] - d_i);
      }
      // dv_j += p_ij dout_i, dk_j += ds_ij q_i, i ascending. Queries before the warp's first
      // key and past T have p = 0 for all of its keys.
      const int i_begin = max(0, key0 - i0);
      const int i_end = min(kTile, T - i0);
      for (int ii = i_begin; ii < i_end; ++ii) {
        float qi[kChunks], gi[kChunks];
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
          const int d = lane + 32 * c;
          qi[c] = d < hs ? q_s[ii * qld + d] : 0.0f;
          gi[c] = d < hs ? g_s[ii * qld + d] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) {
          const float pi = __shfl_sync(kFullMask, p[r], ii);
          const float dsi = __shfl_sync(kFullMask, ds[r], ii);
#pragma unroll
          for (int c = 0; c < kChunks; ++c) {
            dv[r][c] = fmaf(pi, gi[c], dv[r][c]);
            dk[r][c] = fmaf(dsi, qi[c], dk[r][c]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int j = key0 + r;
    if (j >= T) continue;
    float* row = dqkv + (static_cast<size_t>(b) * T + j) * C3;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < hs) {
        row[k_off + d] = dk[r][c] * scale;
        row[v_off + d] = dv[r][c];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

struct Geometry {
  int heads = 0;           // B * NH
  int kv_heads = 0;        // B * NKV
  int tiles = 0;           // ceil(T / kTile)
  unsigned blocks = 0;     // tiles * heads
  unsigned kv_blocks = 0;  // tiles * kv_heads
};

// cudaErrorInvalidValue for shapes the kernels do not handle; `empty` when there is no work.
cudaError_t MakeGeometry(int B, int T, int NH, int NKV, int hs, Geometry* g, bool* empty) {
  *empty = B <= 0 || T <= 0 || NH <= 0 || hs <= 0;
  if (*empty) return cudaSuccess;
  if (NKV <= 0 || NH % NKV != 0 || hs > kMaxHeadSize) return cudaErrorInvalidValue;
  const int64_t heads = static_cast<int64_t>(B) * NH;
  const int64_t tiles = (static_cast<int64_t>(T) + kTile - 1) / kTile;
  if (heads * tiles > INT32_MAX) return cudaErrorInvalidValue;
  g->heads = static_cast<int>(heads);
  g->kv_heads = B * NKV;
  g->tiles = static_cast<int>(tiles);
  g->blocks = static_cast<unsigned>(heads * tiles);
  g->kv_blocks = static_cast<unsigned>(static_cast<int64_t>(g->kv_heads) * tiles);
  return cudaSuccess;
}

int Chunks(int hs) { return hs <= 32 ? 1 : hs <= 64 ? 2 : hs <= 128 ? 4 : 8; }

// Allows `bytes` of dynamic shared memory for `kernel` when above the default 48 KiB.
template <typename Kernel>
cudaError_t AllowSmem(Kernel kernel, size_t bytes) {
  if (bytes <= kDefaultSmemBytes) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

template <int kChunks>
cudaError_t Forward(float* out, float* lse, const float* qkv, int T, int NH, int NKV, int hs,
                    const Geometry& g, float scale, cudaStream_t stream) {
  const size_t smem = sizeof(float) * static_cast<size_t>(kTile) * (2 * hs + PaddedStride(hs));
  const cudaError_t err = AllowSmem(AttentionForwardKernel<kChunks>, smem);
  if (err != cudaSuccess) return err;
  AttentionForwardKernel<kChunks><<<g.blocks, kThreads, smem, stream>>>(
      out, lse, qkv, T, NH, NKV, hs, g.heads, g.tiles, scale);
  return cudaGetLastError();
}

template <int kChunks>
cudaError_t Backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                     const float* lse, int T, int NH, int NKV, int hs, float* dsum,
                     const Geometry& g, float scale, cudaStream_t stream) {
  const size_t tile_floats = static_cast<size_t>(kTile) * (2 * hs + 2 * PaddedStride(hs));
  const size_t smem_q = sizeof(float) * tile_floats;
  const size_t smem_k = sizeof(float) * (tile_floats + 2 * kTile);
  cudaError_t err = AllowSmem(AttentionBackwardQueryKernel<kChunks>, smem_q);
  if (err != cudaSuccess) return err;
  err = AllowSmem(AttentionBackwardKeyKernel<kChunks>, smem_k);
  if (err != cudaSuccess) return err;
  AttentionBackwardQueryKernel<kChunks><<<g.blocks, kThreads, smem_q, stream>>>(
      dqkv, dsum, dout, qkv, out, lse, T, NH, NKV, hs, g.heads, g.tiles, scale);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  // Stream order makes kernel 1's D (dsum) visible to kernel 2.
  AttentionBackwardKeyKernel<kChunks><<<g.kv_blocks, kThreads, smem_k, stream>>>(
      dqkv, dsum, dout, qkv, lse, T, NH, NKV, hs, g.kv_heads, scale);
  return cudaGetLastError();
}

}  // namespace

size_t AttentionScratchFloats(int B, int T, int NH) {
  if (B <= 0 || T <= 0 || NH <= 0) return 0;
  return static_cast<size_t>(B) * NH * T;
}

cudaError_t LaunchGqaAttentionForward(float* out, float* lse, const float* qkv, int B, int T,
                                      int NH, int NKV, int hs, cudaStream_t stream) {
  Geometry g;
  bool empty = false;
  cudaError_t err = MakeGeometry(B, T, NH, NKV, hs, &g, &empty);
  if (err != cudaSuccess) return err;
  if (empty) return cudaGetLastError();
  const float scale = 1.0f / sqrtf(static_cast<float>(hs));
  switch (Chunks(hs)) {
    case 1:
      return Forward<1>(out, lse, qkv, T, NH, NKV, hs, g, scale, stream);
    case 2:
      return Forward<2>(out, lse, qkv, T, NH, NKV, hs, g, scale, stream);
    case 4:
      return Forward<4>(out, lse, qkv, T, NH, NKV, hs, g, scale, stream);
    default:
      return Forward<8>(out, lse, qkv, T, NH, NKV, hs, g, scale, stream);
  }
}

cudaError_t LaunchGqaAttentionBackward(float* dqkv, const float* dout, const float* qkv,
                                       const float* out, const float* lse, int B, int T, int NH,
                                       int NKV, int hs, float* scratch, cudaStream_t stream) {
  Geometry g;
  bool empty = false;
  cudaError_t err = MakeGeometry(B, T, NH, NKV, hs, &g, &empty);
  if (err != cudaSuccess) return err;
  if (empty) return cudaGetLastError();
  const float scale = 1.0f / sqrtf(static_cast<float>(hs));
  switch (Chunks(hs)) {
    case 1:
      return Backward<1>(dqkv, dout, qkv, out, lse, T, NH, NKV, hs, scratch, g, scale, stream);
    case 2:
      return Backward<2>(dqkv, dout, qkv, out, lse, T, NH, NKV, hs, scratch, g, scale, stream);
    case 4:
      return Backward<4>(dqkv, dout, qkv, out, lse, T, NH, NKV, hs, scratch, g, scale, stream);
    default:
      return Backward<8>(dqkv, dout, qkv, out, lse, T, NH, NKV, hs, scratch, g, scale, stream);
  }
}

cudaError_t LaunchAttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C,
                                   int NH, cudaStream_t stream) {
  if (B <= 0 || T <= 0 || C <= 0) return cudaGetLastError();
  if (NH <= 0 || C % NH != 0) return cudaErrorInvalidValue;
  return LaunchGqaAttentionForward(out, lse, qkv, B, T, NH, NH, C / NH, stream);
}

cudaError_t LaunchAttentionBackward(float* dqkv, const float* dout, const float* qkv,
                                    const float* out, const float* lse, int B, int T, int C, int NH,
                                    float* scratch, cudaStream_t stream) {
  if (B <= 0 || T <= 0 || C <= 0) return cudaGetLastError();
  if (NH <= 0 || C % NH != 0) return cudaErrorInvalidValue;
  return LaunchGqaAttentionBackward(dqkv, dout, qkv, out, lse, B, T, NH, NH, C / NH, scratch,
                                    stream);
}

}  // namespace spillway::kernels::cuda
