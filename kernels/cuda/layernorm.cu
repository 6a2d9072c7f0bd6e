// LayerNorm over the last dimension (eps 1e-5, biased variance), forward and backward.
//
// Forward and the dinp part of the backward: one warp per row, each lane a strided slice of the
// row, row sums by a butterfly shuffle (every lane ends with the same, fixed-order sum). Where
// rows are whole float4 quads (C % 4 == 0, 16-byte aligned) and short enough, the row is held in
// registers and read from memory once (the *Cached kernels): the forward's warp per row (lane l
// owns quads l, l + 32, ...), the backward's block of 4 warps per row (thread t owns quads t,
// t + 128, ...; the warps' sums added in order); other shapes take the scalar kernels. The forward
// writes float or bf16 (OutT) and the backward reads dout as float or bf16 (DoutT; store_as.cuh).
// dweight/dbias (sums over the N rows): where the backward's row fits 4 quads a thread (C <= 2048)
// and the scratch holds the parts, the dinp kernel adds them too: each of as many blocks as the GPU
// holds at once takes rows blockIdx.x, + gridDim.x, ..., each thread sums its channels over its
// block's rows and writes the block's part; a finish kernel adds the parts (per channel, 32 lanes
// in order, then a fixed tree). Otherwise a separate kernel reads the rows again: a block owns the
// channels of one 32-byte sector of dout (8 fp32 or 16 bf16), a chunk of the rows and 512 /
// channels row lanes; row lane r adds its rows r, r + lanes, ... in order, then a fixed
// shared-memory tree adds the lanes; with scratch the rows are cut into several chunks (their
// number fixed by N, C and the scratch size) whose parts the finish kernel adds. The bf16 backward
// may also write what the next matmul backward reads of dinp (its bf16 copy and column sums): the
// fused dinp kernel then writes the copy and a third set of parts; elsewhere the bias-gradient
// kernel (matmul_bias.cu) does both after it, its counters in the scratch's last words. No
// atomic adds of values, so the results are bitwise reproducible on one GPU model.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

constexpr float kEps = 1e-5f;
constexpr int kRowThreads = 128;  // 4 rows (warps) per block: finer occupancy steps
constexpr int kRowsPerBlock = kRowThreads / 32;

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename OutT>
__global__ void __launch_bounds__(kRowThreads)
    LayerNormForwardKernel(OutT* out, float* mean, float* rstd, const float* inp,
                           const float* weight, const float* bias, int N, int C) {
  const int lane = threadIdx.x % 32;
  const size_t row = static_cast<size_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<size_t>(N)) return;  // whole warp
  const float* x = inp + row * C;
  OutT* o = out + row * C;
  float sum = 0.0f;
  for (int c = lane; c < C; c += 32) sum += x[c];
  const float m = WarpSum(sum) / C;
  float sq = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = x[c] - m;
    sq += d * d;
  }
  const float var = WarpSum(sq) / C;
  const float s = 1.0f / sqrtf(var + kEps);
  for (int c = lane; c < C; c += 32) StoreAs(o + c, (x[c] - m) * s * weight[c] + bias[c]);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// Rows of C / 4 <= 32 * V quads held in registers: V float4 per lane.
template <int V, typename OutT>
__global__ void __launch_bounds__(kRowThreads)
    LayerNormForwardCachedKernel(OutT* out, float* mean, float* rstd, const float* inp,
                                 const float* weight, const float* bias, int N, int C) {
  const int lane = threadIdx.x % 32;
  const size_t row = static_cast<size_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<size_t>(N)) return;  // whole warp
  const int C4 = C / 4;
  const auto* x = reinterpret_cast<const float4*>(inp + row * C);
  float4 v[V];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int q = lane + 32 * i;
    v[i] = q < C4 ? x[q] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
  }
  const float m = WarpSum(sum) / C;
  float sq = 0.0f;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    if (lane + 32 * i < C4) {
      const float a = v[i].x - m, b = v[i].y - m, c = v[i].z - m, d = v[i].w - m;
      sq += (a * a + b * b) + (c * c + d * d);
    }
  }
  const float var = WarpSum(sq) / C;
  const float s = 1.0f / sqrtf(var + kEps);
  const auto* w4 = reinterpret_cast<const float4*>(weight);
  const auto* b4 = reinterpret_cast<const float4*>(bias);
  OutT* o = out + row * C;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int q = lane + 32 * i;
    if (q < C4) {
      const float4 w = __ldg(w4 + q), b = __ldg(b4 + q);
      StoreQuadAs(o, q,
                  make_float4((v[i].x - m) * s * w.x + b.x, (v[i].y - m) * s * w.y + b.y,
                              (v[i].z - m) * s * w.z + b.z, (v[i].w - m) * s * w.w + b.w));
    }
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

template <typename DoutT>
__global__ void __launch_bounds__(kRowThreads)
    LayerNormBackwardInputKernel(float* dinp, const DoutT* dout, const float* inp,
                                 const float* weight, const float* mean, const float* rstd, int N,
                                 int C) {
  const int lane = threadIdx.x % 32;
  const size_t row = static_cast<size_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<size_t>(N)) return;  // whole warp
  const float* x = inp + row * C;
  const DoutT* d = dout + row * C;
  float* di = dinp + row * C;
  const float m = mean[row];
  const float s = rstd[row];
  float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float norm = (x[c] - m) * s;
    const float dnorm = LoadAs(d + c) * weight[c];
    dnorm_sum += dnorm;
    dnorm_norm_sum += dnorm * norm;
  }
  const float dnorm_mean = WarpSum(dnorm_sum) / C;
  const float dnorm_norm_mean = WarpSum(dnorm_norm_sum) / C;
  for (int c = lane; c < C; c += 32) {
    const float norm = (x[c] - m) * s;
    const float dnorm = LoadAs(d + c) * weight[c];
    di[c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
  }
}

// The dinp part, a block per row: thread t holds quads t, t + 128, ... (V of each of inp, dout,
// weight and dinp, all loaded before the row sums, so that a row's loads are in flight together,
// and the next row's loaded before this row's sums);
// the sums add the warps' shuffle sums in warp order through shared memory. Blocks take rows
// blockIdx.x, + gridDim.x, ... With kParts each thread also sums dout * norm and dout of its
// channels over its block's rows, in row order, and writes them to dweight_parts / dbias_parts
// at [blockIdx.x * C + c]: the parameter sums without a second reading of the rows. With kCopies
// (and kParts) it also writes dinp's final values rounded to bf16 to dinp16 and sums them per
// channel likewise into dinp_parts.
template <int V, typename DoutT, bool kParts, bool kCopies = false>
__global__ void __launch_bounds__(kRowThreads)
    LayerNormBackwardInputCachedKernel(float* dinp, const DoutT* dout, const float* inp,
                                       const float* weight, const float* mean, const float* rstd,
                                       int N, int C, float* dweight_parts, float* dbias_parts,
                                       __nv_bfloat16* dinp16, float* dinp_parts) {
  static_assert(kParts || !kCopies);
  __shared__ float warp_sums[kRowsPerBlock][2];
  const int C4 = C / 4;
  const auto* w4 = reinterpret_cast<const float4*>(weight);
  float4 dw[kParts ? V : 1], db[kParts ? V : 1], ds[kCopies ? V : 1];
  if constexpr (kParts) {
#pragma unroll
    for (int i = 0; i < V; ++i) dw[i] = db[i] = ds[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  // The block's next row is loaded while it works on this one.
  float4 x_next[V], d_next[V], di_next[V];
  float m_next = 0.0f, s_next = 0.0f;
  const auto load = [&](size_t row) {
    const auto* x4 = reinterpret_cast<const float4*>(inp + row * C);
    const auto* di4 = reinterpret_cast<const float4*>(dinp + row * C);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int q = threadIdx.x + kRowThreads * i;
      if (q < C4) {
        x_next[i] = x4[q];
        d_next[i] = LoadQuadAs(dout + row * C, q);
        di_next[i] = di4[q];
      }
    }
    m_next = mean[row];
    s_next = rstd[row];
  };
  if (blockIdx.x < static_cast<unsigned>(N)) load(blockIdx.x);
  for (size_t row = blockIdx.x; row < static_cast<size_t>(N); row += gridDim.x) {
    auto* di4 = reinterpret_cast<float4*>(dinp + row * C);
    const float m = m_next;
    const float s = s_next;
    float4 nv[V], gv[V], di[V];  // norm, dnorm = dout * weight, and dinp
    float4 dv[V];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      nv[i] = x_next[i];
      dv[i] = d_next[i];
      di[i] = di_next[i];
    }
    if (row + gridDim.x < static_cast<size_t>(N)) load(row + gridDim.x);
    float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int q = threadIdx.x + kRowThreads * i;
      if (q < C4) {
        const float4 x = nv[i], d = dv[i], w = __ldg(w4 + q);
        nv[i] = make_float4((x.x - m) * s, (x.y - m) * s, (x.z - m) * s, (x.w - m) * s);
        gv[i] = make_float4(d.x * w.x, d.y * w.y, d.z * w.z, d.w * w.w);
        dnorm_sum += (gv[i].x + gv[i].y) + (gv[i].z + gv[i].w);
        dnorm_norm_sum +=
            (gv[i].x * nv[i].x + gv[i].y * nv[i].y) + (gv[i].z * nv[i].z + gv[i].w * nv[i].w);
        if constexpr (kParts) {
          dw[i].x += d.x * nv[i].x, dw[i].y += d.y * nv[i].y;
          dw[i].z += d.z * nv[i].z, dw[i].w += d.w * nv[i].w;
          db[i].x += d.x, db[i].y += d.y, db[i].z += d.z, db[i].w += d.w;
        }
      }
    }
    dnorm_sum = WarpSum(dnorm_sum);
    dnorm_norm_sum = WarpSum(dnorm_norm_sum);
    if (threadIdx.x % 32 == 0) {
      warp_sums[threadIdx.x / 32][0] = dnorm_sum;
      warp_sums[threadIdx.x / 32][1] = dnorm_norm_sum;
    }
    __syncthreads();
    dnorm_sum = 0.0f;
    dnorm_norm_sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kRowsPerBlock; ++w) {
      dnorm_sum += warp_sums[w][0];
      dnorm_norm_sum += warp_sums[w][1];
    }
    const float dnorm_mean = dnorm_sum / C;
    const float dnorm_norm_mean = dnorm_norm_sum / C;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int q = threadIdx.x + kRowThreads * i;
      if (q < C4) {
        di[i].x += (gv[i].x - dnorm_mean - nv[i].x * dnorm_norm_mean) * s;
        di[i].y += (gv[i].y - dnorm_mean - nv[i].y * dnorm_norm_mean) * s;
        di[i].z += (gv[i].z - dnorm_mean - nv[i].z * dnorm_norm_mean) * s;
        di[i].w += (gv[i].w - dnorm_mean - nv[i].w * dnorm_norm_mean) * s;
        di4[q] = di[i];
        if constexpr (kCopies) {
          StoreQuadAs(dinp16 + row * C, q, di[i]);
          ds[i].x += di[i].x, ds[i].y += di[i].y, ds[i].z += di[i].z, ds[i].w += di[i].w;
        }
      }
    }
    __syncthreads();  // warp_sums is reused by the next row
  }
  if constexpr (kParts) {
    auto* dw4 = reinterpret_cast<float4*>(dweight_parts + static_cast<size_t>(blockIdx.x) * C);
    auto* db4 = reinterpret_cast<float4*>(dbias_parts + static_cast<size_t>(blockIdx.x) * C);
    auto* ds4 = reinterpret_cast<float4*>(dinp_parts + static_cast<size_t>(blockIdx.x) * C);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int q = threadIdx.x + kRowThreads * i;
      if (q < C4) {
        dw4[q] = dw[i];
        db4[q] = db[i];
        if constexpr (kCopies) ds4[q] = ds[i];
      }
    }
  }
}

// Calls launch(std::integral_constant<int, V>{}) for the first V of V0, Vs... (ascending quads per
// thread) whose `threads` * V quads hold a row of `quads` float4s; false (nothing launched) when
// none does.
template <int V0, int... Vs, typename Launch>
bool LaunchWithQuads(int quads, int threads, Launch& launch) {
  if (quads <= threads * V0) {
    launch(std::integral_constant<int, V0>{});
    return true;
  }
  if constexpr (sizeof...(Vs) > 0) {
    return LaunchWithQuads<Vs...>(quads, threads, launch);
  } else {
    return false;
  }
}

// Launches a *Cached kernel (through `launch`, as above) where rows of C floats at these pointers
// are whole aligned quads and fit in the largest of Vs quads a thread, `threads` threads a row;
// false: the scalar kernels' case. The steps of Vs keep the registers a thread holds near the
// row's size (the forward's warp per row: GPT-2's 768, 1600 and 3072 take 6, 13 and 24), for the
// occupancy.
template <int... Vs, typename Launch>
bool LaunchCached(int C, int threads, std::initializer_list<const void*> rows, Launch&& launch) {
  if (C % 4 != 0) return false;
  for (const void* p : rows) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  return LaunchWithQuads<Vs...>(C / 4, threads, launch);
}

// A block's channels: one 32-byte sector of a dout row (8 fp32 or 16 bf16 values).
template <typename DoutT>
constexpr int kParamChannels = 32 / sizeof(DoutT);
constexpr int kParamThreads = 512;
template <typename DoutT>
constexpr int kParamRowLanes = kParamThreads / kParamChannels<DoutT>;
constexpr int kParamTargetBlocks = 1024;
constexpr int kParamMaxChunks = 64;
constexpr int kParamMinRowsPerChunk = 256;

// The parameter kernels' last step: thread (lane, ch) holds its lane's K sums of channel ch (v[k]:
// dw, db and, in the finish of the copies, dinp's); a fixed shared-memory tree over the lanes
// (kLanes a power of two) leaves channel ch's totals in lanes[k][0][ch] after its final barrier.
// Called by the whole block.
template <int K, int kLanes, int kWidth>
__device__ __forceinline__ void AddLanes(float (&lanes)[K][kLanes][kWidth], int lane, int ch,
                                         const float (&v)[K]) {
#pragma unroll
  for (int k = 0; k < K; ++k) lanes[k][lane][ch] = v[k];
  __syncthreads();
#pragma unroll
  for (int stride = kLanes / 2; stride > 0; stride /= 2) {
    if (lane < stride) {
#pragma unroll
      for (int k = 0; k < K; ++k) lanes[k][lane][ch] += lanes[k][lane + stride][ch];
    }
    __syncthreads();
  }
}

// Block (channel tile, chunk) sums dout * norm and dout over the rows
// [blockIdx.y * rows_per_chunk, +rows_per_chunk) of its channels: row lane r adds its rows in
// ascending order, then a fixed shared-memory tree adds the row lanes. With `accumulate` the
// block covers all rows and adds into dweight/dbias; otherwise it writes its chunk's sums to
// dweight[blockIdx.y * C + c] and dbias[blockIdx.y * C + c] (the scratch partials).
template <typename DoutT>
__global__ void __launch_bounds__(kParamThreads)
    LayerNormBackwardParamsKernel(float* dweight, float* dbias, const DoutT* dout, const float* inp,
                                  const float* mean, const float* rstd, int N, int C,
                                  int rows_per_chunk, bool accumulate) {
  constexpr int kChannels = kParamChannels<DoutT>;
  constexpr int kRowLanes = kParamRowLanes<DoutT>;
  __shared__ float s_sums[2][kRowLanes][kChannels];  // dw, db
  const int ch = threadIdx.x % kChannels;
  const int r = threadIdx.x / kChannels;
  const int c = blockIdx.x * kChannels + ch;
  const int end = min(N, (static_cast<int>(blockIdx.y) + 1) * rows_per_chunk);
  float dw = 0.0f, db = 0.0f;
  if (c < C) {
    int n = static_cast<int>(blockIdx.y) * rows_per_chunk + r;
    // Four rows per iteration for loads in flight; adds stay in row order.
    for (; n + 3 * kRowLanes < end; n += 4 * kRowLanes) {
      float dv[4], xv[4], mv[4], sv[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const size_t idx = static_cast<size_t>(n + u * kRowLanes) * C + c;
        dv[u] = LoadAs(dout + idx);
        xv[u] = inp[idx];
        mv[u] = mean[n + u * kRowLanes];
        sv[u] = rstd[n + u * kRowLanes];
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        dw += dv[u] * ((xv[u] - mv[u]) * sv[u]);
        db += dv[u];
      }
    }
    for (; n < end; n += kRowLanes) {
      const size_t idx = static_cast<size_t>(n) * C + c;
      const float dv = LoadAs(dout + idx);
      dw += dv * ((inp[idx] - mean[n]) * rstd[n]);
      db += dv;
    }
  }
  AddLanes(s_sums, r, ch, {dw, db});
  if (r == 0 && c < C) {
    if (accumulate) {
      dweight[c] += s_sums[0][0][ch];
      dbias[c] += s_sums[1][0][ch];
    } else {
      const size_t at = static_cast<size_t>(blockIdx.y) * C + c;
      dweight[at] = s_sums[0][0][ch];
      dbias[at] = s_sums[1][0][ch];
    }
  }
}

// dweight[c] += the sum over parts k = 0, 1, ... of parts[k * C + c], dbias[c] += that of
// parts[(P + k) * C + c] (P = `parts`) and, with K = 3, dinp_sums[c] = that of
// parts[(2P + k) * C + c]. A block owns 8 channels (GPT-2's 768: 96 blocks); part lane l adds
// parts l, l + 128, ... in order, then a fixed shared-memory tree adds the lanes (128 lanes: a
// few hundred parts take a thread a handful of loads).
constexpr int kFinishChannels = 8;
constexpr int kFinishLanes = 128;
template <int K>
__global__ void __launch_bounds__(kFinishChannels* kFinishLanes)
    LayerNormBackwardParamsFinishKernel(float* dweight, float* dbias, float* dinp_sums,
                                        const float* part_sums, int C, int parts) {
  __shared__ float s_sums[K][kFinishLanes][kFinishChannels + 1];
  const int ch = threadIdx.x % kFinishChannels;
  const int lane = threadIdx.x / kFinishChannels;
  const int c = blockIdx.x * kFinishChannels + ch;
  float v[K] = {};
  if (c < C) {
#pragma unroll 4
    for (int k = lane; k < parts; k += kFinishLanes) {
#pragma unroll
      for (int j = 0; j < K; ++j) v[j] += part_sums[(static_cast<size_t>(j) * parts + k) * C + c];
    }
  }
  AddLanes(s_sums, lane, ch, v);
  if (lane == 0 && c < C) {
    dweight[c] += s_sums[0][0][ch];
    dbias[c] += s_sums[1][0][ch];
    if constexpr (K == 3) dinp_sums[c] = s_sums[2][0][ch];
  }
}

// part_sums: K (parts, C) arrays, as the finish kernel reads them.
cudaError_t LaunchParamsFinish(float* dweight, float* dbias, float* dinp_sums,
                               const float* part_sums, int C, int parts, cudaStream_t stream) {
  const unsigned blocks = (static_cast<unsigned>(C) + kFinishChannels - 1) / kFinishChannels;
  if (dinp_sums != nullptr) {
    LayerNormBackwardParamsFinishKernel<3><<<blocks, kFinishChannels * kFinishLanes, 0, stream>>>(
        dweight, dbias, dinp_sums, part_sums, C, parts);
  } else {
    LayerNormBackwardParamsFinishKernel<2><<<blocks, kFinishChannels * kFinishLanes, 0, stream>>>(
        dweight, dbias, nullptr, part_sums, C, parts);
  }
  return cudaGetLastError();
}

// Blocks of the fused backward (the input gradient with the parts of the parameter sums, and
// with kCopies those of dinp): as many as the GPU holds at once up to kFusedBlocksPerSm an SM (so
// the parts' order depends on N, C and the GPU model; each block has two rows in flight, so fewer
// blocks keep the memory as busy and leave fewer parts to write and add), at most N and as many
// as the scratch holds two (kCopies: three) (parts, C) arrays of; 0 (not fused) below kMinParts.
constexpr int kFusedMinParts = 64;
constexpr int kFusedBlocksPerSm = 8;
template <int V, typename DoutT, bool kCopies>
int FusedParts(int N, int C, size_t scratch_floats) {
  static const int resident = [] {
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm, LayerNormBackwardInputCachedKernel<V, DoutT, true, kCopies>, kRowThreads, 0) !=
        cudaSuccess) {
      (void)cudaGetLastError();  // a failed query only means the unfused kernels
      return 0;
    }
    return MultiprocessorCount() * std::min(per_sm, kFusedBlocksPerSm);
  }();
  const size_t by_scratch = scratch_floats / ((kCopies ? 3 : 2) * static_cast<size_t>(C));
  const int parts = static_cast<int>(
      std::min<size_t>({static_cast<size_t>(N), static_cast<size_t>(resident), by_scratch}));
  return parts >= kFusedMinParts || (parts == N && parts > 0) ? parts : 0;
}

// Row chunks of the parameter sums for (N, C) in `tiles` channel tiles with `scratch_floats` of
// scratch (two (chunks, C) partial arrays).
int ParamChunks(int N, int C, int tiles, size_t scratch_floats) {
  int chunks = std::min((kParamTargetBlocks + tiles - 1) / tiles, kParamMaxChunks);
  chunks = std::min(chunks, std::max(1, N / kParamMinRowsPerChunk));
  const size_t by_scratch = scratch_floats / (2 * static_cast<size_t>(C));
  if (by_scratch < static_cast<size_t>(chunks)) chunks = static_cast<int>(by_scratch);
  return std::max(chunks, 1);
}

template <typename OutT>
cudaError_t LaunchForward(OutT* out, float* mean, float* rstd, const float* inp,
                          const float* weight, const float* bias, int N, int C,
                          cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  const unsigned blocks = (static_cast<unsigned>(N) + kRowsPerBlock - 1) / kRowsPerBlock;
  const bool cached =
      LaunchCached<6, 8, 13, 16, 24, 32>(C, 32, {out, inp, weight, bias}, [&](auto v) {
        LayerNormForwardCachedKernel<decltype(v)::value>
            <<<blocks, kRowThreads, 0, stream>>>(out, mean, rstd, inp, weight, bias, N, C);
      });
  if (!cached) {
    LayerNormForwardKernel<<<blocks, kRowThreads, 0, stream>>>(out, mean, rstd, inp, weight, bias,
                                                               N, C);
  }
  return cudaGetLastError();
}

// The unfused parameter sums: LayerNormBackwardParamsKernel over row chunks (their number fixed
// by N, C and part_floats), whose parts the finish kernel adds.
template <typename DoutT>
cudaError_t LaunchParamSums(float* dweight, float* dbias, const DoutT* dout, const float* inp,
                            const float* mean, const float* rstd, int N, int C, float* scratch,
                            size_t part_floats, cudaStream_t stream) {
  constexpr unsigned kChannels = kParamChannels<DoutT>;
  const unsigned tiles = (static_cast<unsigned>(C) + kChannels - 1) / kChannels;
  const int chunks =
      scratch == nullptr ? 1 : ParamChunks(N, C, static_cast<int>(tiles), part_floats);
  if (chunks == 1) {
    LayerNormBackwardParamsKernel<<<dim3(tiles, 1), kParamThreads, 0, stream>>>(
        dweight, dbias, dout, inp, mean, rstd, N, C, N, true);
    return cudaGetLastError();
  }
  float* dw_part = scratch;
  float* db_part = scratch + static_cast<size_t>(chunks) * C;
  LayerNormBackwardParamsKernel<<<dim3(tiles, static_cast<unsigned>(chunks)), kParamThreads, 0,
                                  stream>>>(dw_part, db_part, dout, inp, mean, rstd, N, C,
                                            (N + chunks - 1) / chunks, false);
  if (const cudaError_t launched = cudaGetLastError(); launched != cudaSuccess) return launched;
  return LaunchParamsFinish(dweight, dbias, nullptr, scratch, C, chunks, stream);
}

template <typename DoutT>
cudaError_t LaunchBackward(float* dinp, float* dweight, float* dbias, const DoutT* dout,
                           const float* inp, const float* weight, const float* mean,
                           const float* rstd, int N, int C, float* scratch, size_t scratch_floats,
                           __nv_bfloat16* dinp16, float* dinp_sums, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  const bool copies = dinp16 != nullptr;
  // The LayerNorm's parts leave the bias gradient's counters at the scratch's end alone.
  const size_t part_floats =
      scratch == nullptr ? 0 : scratch_floats - std::min(scratch_floats, kBiasGradientCounters);
  // Rows of up to 4 quads a thread (C <= 2048): one pass for the input gradient and the parts
  // of the parameter sums (and dinp's copy and sums), which the finish kernel adds.
  int parts = 0;
  if (scratch != nullptr) {
    LaunchCached<1, 2, 4>(C, kRowThreads, {dinp, dout, inp, weight, dinp16}, [&](auto v) {
      constexpr int V = decltype(v)::value;
      parts = copies ? FusedParts<V, DoutT, true>(N, C, part_floats)
                     : FusedParts<V, DoutT, false>(N, C, part_floats);
      if (parts == 0) return;
      float* db_part = scratch + static_cast<size_t>(parts) * C;
      float* ds_part = scratch + 2 * static_cast<size_t>(parts) * C;
      const unsigned blocks = static_cast<unsigned>(parts);
      if (copies) {
        LayerNormBackwardInputCachedKernel<V, DoutT, true, true>
            <<<blocks, kRowThreads, 0, stream>>>(dinp, dout, inp, weight, mean, rstd, N, C, scratch,
                                                 db_part, dinp16, ds_part);
      } else {
        LayerNormBackwardInputCachedKernel<V, DoutT, true><<<blocks, kRowThreads, 0, stream>>>(
            dinp, dout, inp, weight, mean, rstd, N, C, scratch, db_part, nullptr, nullptr);
      }
    });
    if (parts > 0) {
      if (const cudaError_t launched = cudaGetLastError(); launched != cudaSuccess) return launched;
      return LaunchParamsFinish(dweight, dbias, copies ? dinp_sums : nullptr, scratch, C, parts,
                                stream);
    }
  }
  const unsigned row_blocks = (static_cast<unsigned>(N) + kRowsPerBlock - 1) / kRowsPerBlock;
  const bool cached =
      LaunchCached<1, 2, 4, 8>(C, kRowThreads, {dinp, dout, inp, weight}, [&](auto v) {
        LayerNormBackwardInputCachedKernel<decltype(v)::value, DoutT, false>
            <<<static_cast<unsigned>(N), kRowThreads, 0, stream>>>(
                dinp, dout, inp, weight, mean, rstd, N, C, nullptr, nullptr, nullptr, nullptr);
      });
  if (!cached) {
    LayerNormBackwardInputKernel<<<row_blocks, kRowThreads, 0, stream>>>(dinp, dout, inp, weight,
                                                                         mean, rstd, N, C);
  }
  if (const cudaError_t e = LaunchParamSums(dweight, dbias, dout, inp, mean, rstd, N, C, scratch,
                                            part_floats, stream);
      e != cudaSuccess || !copies) {
    return e;
  }
  // dinp's copy and sums in a pass of their own, on the same scratch (its parts are done).
  if (const cudaError_t e = cudaMemsetAsync(dinp_sums, 0, C * sizeof(float), stream);
      e != cudaSuccess) {
    return e;
  }
  return LaunchBiasGradient(dinp_sums, dinp, N, C, scratch, scratch == nullptr ? 0 : scratch_floats,
                            reinterpret_cast<uint16_t*>(dinp16), stream);
}

}  // namespace

cudaError_t LaunchLayerNormForward(float* out, float* mean, float* rstd, const float* inp,
                                   const float* weight, const float* bias, int N, int C,
                                   cudaStream_t stream) {
  return LaunchForward(out, mean, rstd, inp, weight, bias, N, C, stream);
}

cudaError_t LaunchLayerNormForwardBf16(uint16_t* out, float* mean, float* rstd, const float* inp,
                                       const float* weight, const float* bias, int N, int C,
                                       cudaStream_t stream) {
  return LaunchForward(reinterpret_cast<__nv_bfloat16*>(out), mean, rstd, inp, weight, bias, N, C,
                       stream);
}

cudaError_t LaunchLayerNormBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                                    const float* inp, const float* weight, const float* mean,
                                    const float* rstd, int N, int C, float* scratch,
                                    size_t scratch_floats, cudaStream_t stream) {
  return LaunchBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, scratch,
                        scratch_floats, nullptr, nullptr, stream);
}

cudaError_t LaunchLayerNormBackwardBf16(float* dinp, float* dweight, float* dbias,
                                        const uint16_t* dout, const float* inp, const float* weight,
                                        const float* mean, const float* rstd, int N, int C,
                                        float* scratch, size_t scratch_floats, uint16_t* dinp16,
                                        float* dinp_sums, cudaStream_t stream) {
  if ((dinp16 == nullptr) != (dinp_sums == nullptr)) return cudaErrorInvalidValue;
  return LaunchBackward(dinp, dweight, dbias, reinterpret_cast<const __nv_bfloat16*>(dout), inp,
                        weight, mean, rstd, N, C, scratch, scratch_floats,
                        reinterpret_cast<__nv_bfloat16*>(dinp16), dinp_sums, stream);
}

}  // namespace spillway::kernels::cuda
