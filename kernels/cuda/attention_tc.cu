// Causal (grouped-query) attention on tensor cores, for the mixed-precision matmul setting
// (Ops::SetMatmulPrecision bf16 / fp16) and head sizes 64 and 128: the products q k^T, p v,
// dout v^T, ds k, p^T dout and ds^T q take their operands rounded to 16 bits and accumulate in
// fp32; the softmax, its statistics and every buffer stay fp32 (but for the output, which the
// bf16 launch may write as bf16 and the backward then reads as such), with the layouts and the
// contract of kernels/ops.h (no (T,T) matrix is stored; lse saved). Buffers must be 16-byte
// aligned (the launchers return cudaErrorMisalignedAddress otherwise). The products are mma.sync
// m16n8k16 here at head size 128; at 64 the kernels are attention_wgmma.cu's, on Hopper's
// warpgroup products (same design); the kernels' shared tiles and fragments are in
// attention_tiles.cuh.
//
// Flash-attention-2 style, 4 warps per block. In the forward and dq kernels a warp owns M blocks
// of 16 query rows (kRowTiles: 2 at head size 64, a block covering 128 query rows; 1 at 128),
// which share every k and v fragment it loads, and the keys move in tiles of 64; the dk/dv kernel
// takes 64 key rows a block (16 a warp) and the queries in steps of kDkvRows. Scores,
// probabilities and accumulators stay in registers in the mma fragment layout; a C fragment of
// two adjacent 8-column tiles is the A fragment of the next product, so p and ds never go through
// shared memory; a warp's rows that every step multiplies (q; q and dout) are loaded as A
// fragments once, and the backward takes its scores 32 columns at a time (half the registers;
// the same sums in the same order). Exponentials are the special function unit's ex2 of
// log2e-scaled scores, the scale folded into one fma. The launchers first round qkv (and, for
// the backward, dout) to 16-bit copies in the caller's scratch where they are given as fp32, one
// pass each; the kernels copy tiles of those into shared memory with cp.async (CopyTile) and read
// them with ldmatrix. The next key tile (forward, dq) or query tile (dk/dv) is in flight while
// the block multiplies the current one: kStages buffers (three at head size 64: one barrier a
// step), one cp.async group per tile step. A warp skips a key tile that lies wholly past its rows.
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
#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/attention_wgmma.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

using namespace tc;  // NOLINT(build/namespaces): the kernels' shared tiles and fragments

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

  const QueryBlock<R> block(tiles, NH);
  const int bh = block.bh, b = block.b, h = block.h, t0 = block.t0;
  const Geometry<T16> geo = Locate<HS>(qkv, b, h, h / (NH / NKV), T, NH, NKV);
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
    for (int i = 0; i < M; ++i) OnlineSoftmax<kTile, HS>(s[i], m[i], l[i], o[i], scale2);
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

  const QueryBlock<R> block(tiles, NH);
  const int bh = block.bh, b = block.b, h = block.h, tile = block.tile, t0 = block.t0;
  const Geometry<T16> geo = Locate<HS>(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * HS;
  const size_t head = static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS;
  const O* dout_h = dout + head;
  const O* out_h = out + head;
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
      RowStats<HS>(D[i][r], L[i][r], dout_h, out_h, lse + static_cast<size_t>(bh) * T,
                   d_scratch + static_cast<size_t>(bh) * T, C, t0 + wrow + 16 * i + FragRow(2 * r),
                   T);
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

  const DkvSteps<QR> block(tiles, T, NH, NKV);
  const int b = block.b, g = block.g, s0 = block.s0, steps = block.steps;
  const Geometry<T16> geo0 = Locate<HS>(qkv, b, g * block.group, g, T, NH, NKV);
  const int wrow = threadIdx.x / 32 * 16;
  const float scale2 = scale * kLog2e;

  // Step i's tiles and row values go to buffer i % kStages.
  const auto issue = [&](int i) {
    block.Issue<HS, false>(i, q_buf, do_buf, lse_buf, d_buf, qkv, dout16, lse, d_scratch);
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
  for (int i = 0; i < steps; ++i) {
    if (i + 1 < steps) issue(i + 1);
    CommitCopies();
    WaitCopies<1>();
    __syncthreads();  // step i's tiles and row values have landed; all are done with step i - 1
    const int t0 = block.Rows(i);
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
      // The warp's k and v rows as A fragments, loaded again for each product (kept in
      // registers they would not fit beside head size 128's accumulators).
      uint32_t fa[1][HS / 16][4];
      LoadRows<HS, S>(fa[0], k_s, wrow);
      WarpRowsBt<T16, 1, kDkvPart, HS, S>(st, fa, q_s);
      LoadRows<HS, S>(fa[0], v_s, wrow);
      WarpRowsBt<T16, 1, kDkvPart, HS, S>(dpt, fa, do_s);
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
  StoreKeyGradients<HS>(dqkv, kv_parts, dk[0], dv[0], block, tiles, geo0.C3, scale, wrow,
                        reinterpret_cast<float*>(smem));
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
  const Scratch sc = Carve(scratch, B, T, NH, NKV, HS);
  const T16* q16 = nullptr;
  if (cudaError_t e = Qkv16<T16>(&q16, qkv, qkv16, sc,
                                 static_cast<size_t>(B) * T * (NH + 2 * NKV) * HS, stream);
      e != cudaSuccess) {
    return e;
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  if constexpr (HS == kWgmmaHeadSize) {
    return LaunchForwardWgmma<T16>(out, lse, q16, B, T, NH, NKV, scale, stream);
  } else {
    const int tiles = QueryBlocks<HS>(T);
    if (cudaError_t e = AllowSmem(TcForwardKernel<T16, HS, O>, kForwardSmem<HS>);
        e != cudaSuccess) {
      return e;
    }
    TcForwardKernel<T16, HS, O><<<tiles * B * NH, kThreads, kForwardSmem<HS>, stream>>>(
        out, lse, q16, T, NH, NKV, tiles, scale);
    return cudaGetLastError();
  }
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
  const int key_tiles = (T + kTile - 1) / kTile;
  float* q_parts = dbias != nullptr ? bias_parts : nullptr;
  float* kv_parts =
      dbias != nullptr ? bias_parts + static_cast<size_t>(B) * tiles * NH * HS : nullptr;
  if constexpr (HS == kWgmmaHeadSize) {
    if (cudaError_t e = LaunchBackwardDqWgmma<T16>(dqkv, sc.d, dout, dout16, qkv16, out, lse, B, T,
                                                   NH, NKV, scale, q_parts, stream);
        e != cudaSuccess) {
      return e;
    }
    if (cudaError_t e = LaunchBackwardDkvWgmma<T16>(dqkv, sc.d, dout16, qkv16, lse, B, T, NH, NKV,
                                                    scale, kv_parts, stream);
        e != cudaSuccess) {
      return e;
    }
  } else {
    if (cudaError_t e = AllowSmem(TcBackwardDqKernel<T16, HS, O>, kDqSmem<HS>); e != cudaSuccess) {
      return e;
    }
    if (cudaError_t e = AllowSmem(TcBackwardDkvKernel<T16, HS, O>, kDkvSmem<HS>);
        e != cudaSuccess) {
      return e;
    }
    TcBackwardDqKernel<T16, HS, O><<<tiles * B * NH, kThreads, kDqSmem<HS>, stream>>>(
        dqkv, sc.d, dout, dout16, qkv16, out, lse, T, NH, NKV, tiles, scale, q_parts);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    TcBackwardDkvKernel<T16, HS, O><<<key_tiles * B * NKV, kThreads, kDkvSmem<HS>, stream>>>(
        dqkv, sc.d, dout16, qkv16, lse, T, NH, NKV, key_tiles, scale, kv_parts);
  }
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
