// Causal attention's head-size-64 kernels on Hopper's warpgroup products (wgmma.mma_async,
// sm_90a; kernels/cuda/wgmma.cuh): the forward, dq and dk/dv kernels of attention_tc.cu's design
// (blocks, steps, loop orders, masking, softmax, bias-gradient parts, scratch and contract alike)
// with each product one warpgroup instruction instead of mma.sync's per-warp tiles and ldmatrix
// loads of B. The block's 4 warps are one warpgroup; its A operands (the rows every step
// multiplies, and p and ds) stay in registers in the mma fragment layout, its B operands (the
// tiles that stream through the block) sit in 128-byte-swizzled shared tiles. Products whose
// results the next code needs first are committed as groups of their own, so that the
// exponentials of one overlap the next product. Fixed loop orders, no atomics: bitwise
// reproducible.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/attention_wgmma.h"
#include "kernels/cuda/store_as.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace spillway::kernels::cuda::tc {
namespace {

// ---------------------------------------------------------------------------------------------
// Backward, kernel 2 on warpgroup products (head size 64, sm_90a): TcBackwardDkvKernel's blocks,
// steps, masking and sums, its four products as wgmma: the block's 4 warps are one warpgroup over
// the 64 keys (warp w's 16 rows, as in the mma.sync kernel), k and v stay register A fragments,
// and the query-side tiles (q, dout) sit in 128-byte-swizzled shared tiles (wgmma.cuh), read by
// the tensor cores as B: K-major for s^T = k q^T and dp^T = v dout^T, MN-major for
// dv += p^T dout and dk += ds^T q. smem: q, dout (kStages swizzled tiles of kDkvRows rows each),
// k, v (padded rows, read once by ldmatrix), lse and D (kStages x kDkvRows each), after up to
// 1024 bytes that align the swizzled tiles.
constexpr size_t kWgQueryTileBytes =
    static_cast<size_t>(kDkvRows<kWgmmaHeadSize>) * kWgmmaHeadSize * 2;
constexpr size_t kDkvWgmmaSmem =
    kSwizzleSlack + 2 * StagedBytes<kWgmmaHeadSize>(kWgQueryTileBytes) +
    2 * kTileBytes<kTile, kWgmmaHeadSize> +
    2 * StagedBytes<kWgmmaHeadSize>(kDkvRows<kWgmmaHeadSize> * sizeof(float));

template <typename T16, typename O>
__global__ void __launch_bounds__(kThreads, kMinBlocks<kWgmmaHeadSize, 1>)
    TcBackwardDkvWgmmaKernel(O* __restrict__ dqkv, const float* __restrict__ d_scratch,
                             const T16* __restrict__ dout16, const T16* __restrict__ qkv,
                             const float* __restrict__ lse, int T, int NH, int NKV, int tiles,
                             float scale, float* __restrict__ kv_parts) {
  constexpr int HS = kWgmmaHeadSize, S = kStride<HS>, QR = kDkvRows<HS>;
  static_assert(QR % kDkvPart == 0 && kDkvPart == 32, "the products take 32 query rows");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = SwizzleAligned(smem_raw);
  T16* q_buf = reinterpret_cast<T16*>(smem);                   // kStages x QR rows, swizzled
  T16* do_buf = q_buf + kStages<HS> * QR * HS;                 // kStages x QR rows, swizzled
  T16* k_s = do_buf + kStages<HS> * QR * HS;                   // kTile rows
  T16* v_s = k_s + kTile * S;                                  // kTile rows
  float* lse_buf = reinterpret_cast<float*>(v_s + kTile * S);  // kStages x QR
  float* d_buf = lse_buf + kStages<HS> * QR;                   // kStages x QR

  const DkvSteps<QR> block(tiles, T, NH, NKV);
  const int b = block.b, g = block.g, s0 = block.s0, steps = block.steps;
  const Geometry<T16> geo0 = Locate<HS>(qkv, b, g * block.group, g, T, NH, NKV);
  const int wrow = threadIdx.x / 32 * 16;
  const float scale2 = scale * kLog2e;

  // Step i's tiles and row values go to buffer i % kStages.
  const auto issue = [&](int i) {
    block.Issue<HS, true>(i, q_buf, do_buf, lse_buf, d_buf, qkv, dout16, lse, d_scratch);
  };
  CopyKeyTile<HS>(k_s, v_s, geo0, s0, T);
  issue(0);
  CommitCopies();
  float dk[HS / 8][4], dv[HS / 8][4];
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;
  }
  uint32_t k_f[HS / 16][4], v_f[HS / 16][4];
  for (int i = 0; i < steps; ++i) {
    if (i + 1 < steps) issue(i + 1);
    CommitCopies();
    WaitCopies<1>();
    wgmma::FenceSharedWrites();
    __syncthreads();  // step i's tiles and row values have landed; all are done with step i - 1
    if (i == 0) {
      LoadRows<HS, S>(k_f, k_s, wrow);
      LoadRows<HS, S>(v_f, v_s, wrow);
    }
    const int t0 = block.Rows(i);
    const int buf = i % kStages<HS>;
    const bool diagonal = t0 < s0 + kTile;
#pragma unroll
    for (int part = 0; part < QR / kDkvPart; ++part) {
      const int r0 = part * kDkvPart;
      const T16* q_s = q_buf + (buf * QR + r0) * HS;
      const T16* do_s = do_buf + (buf * QR + r0) * HS;
      const float* lse_s = lse_buf + buf * QR + r0;
      const float* d_s = d_buf + buf * QR + r0;
      // s^T (keys x queries) = k q^T; dp^T = v dout^T.
      float st[kDkvPart / 8][4], dpt[kDkvPart / 8][4];  // overwritten by the first products
      // Four groups in flight in turn: p is taken while dp^T multiplies, ds while dv adds.
      wgmma::Fence();
#pragma unroll
      for (int k = 0; k < HS / 16; ++k) {
        wgmma::Mma64x32<T16, 0>(st, k_f[k], wgmma::Descriptor(q_s + 16 * k), k > 0);
      }
      wgmma::Commit();
#pragma unroll
      for (int k = 0; k < HS / 16; ++k) {
        wgmma::Mma64x32<T16, 0>(dpt, v_f[k], wgmma::Descriptor(do_s + 16 * k), k > 0);
      }
      wgmma::Commit();
      wgmma::Wait<1>();  // s^T
#pragma unroll
      for (int n = 0; n < kDkvPart / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = FragCol(n, e);
          const bool masked = diagonal && t0 + r0 + c < s0 + wrow + FragRow(e);
          st[n][e] = masked ? 0.0f : Exp2(fmaf(st[n][e], scale2, -lse_s[c]));  // p^T
        }
      }
      uint32_t p_a[2][4], ds_a[2][4];
      PackA<T16, kDkvPart>(p_a, st);
      wgmma::Fence();
#pragma unroll
      for (int k = 0; k < kDkvPart / 16; ++k) {
        wgmma::Mma64x64<T16, 1>(dv, p_a[k], wgmma::Descriptor(do_s + 16 * k * HS), true);
      }
      wgmma::Commit();
      wgmma::Wait<1>();  // dp^T
#pragma unroll
      for (int n = 0; n < kDkvPart / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) dpt[n][e] = st[n][e] * (dpt[n][e] - d_s[FragCol(n, e)]);
      }
      PackA<T16, kDkvPart>(ds_a, dpt);
      wgmma::Fence();
#pragma unroll
      for (int k = 0; k < kDkvPart / 16; ++k) {
        wgmma::Mma64x64<T16, 1>(dk, ds_a[k], wgmma::Descriptor(q_s + 16 * k * HS), true);
      }
      wgmma::Commit();
      wgmma::Wait<0>();
    }
  }
  StoreKeyGradients<HS>(dqkv, kv_parts, dk, dv, block, tiles, geo0.C3, scale, wrow,
                        reinterpret_cast<float*>(smem));
}

// Forward and dq on warpgroup products (head size 64): the mma.sync kernels' blocks of kBlockRows
// query rows, split into kRowTiles halves of 64 rows; in half i warp w owns rows 64 i + 16 w (the
// warpgroup's layout), q (and dout) stay register A fragments, and the key tiles stream through
// 128-byte-swizzled buffers, read as B: K-major for q k^T and dout v^T, MN-major for p v and
// ds k. Every warp takes part in every product, so no warp skips a tile past its rows (its
// scores there are masked). smem: k, v (kStages swizzled tiles each), then q (and dout) in padded
// rows.
constexpr int kWgM = kRowTiles<kWgmmaHeadSize>;
constexpr int kWgRows = kBlockRows<kWgM>;
static_assert(kWgRows == 64 * kWgM, "a warpgroup product covers 64 rows");
constexpr size_t kWgKeyTileBytes = static_cast<size_t>(kTile) * kWgmmaHeadSize * 2;
constexpr size_t kForwardWgmmaSmem = kSwizzleSlack +
                                     2 * StagedBytes<kWgmmaHeadSize>(kWgKeyTileBytes) +
                                     kTileBytes<kWgRows, kWgmmaHeadSize>;
constexpr size_t kDqWgmmaSmem = kSwizzleSlack + 2 * StagedBytes<kWgmmaHeadSize>(kWgKeyTileBytes) +
                                2 * kTileBytes<kWgRows, kWgmmaHeadSize>;

template <typename T16, typename O>
__global__ void __launch_bounds__(kThreads, kMinBlocks<kWgmmaHeadSize, kWgM>)
    TcForwardWgmmaKernel(O* __restrict__ out, float* __restrict__ lse, const T16* __restrict__ qkv,
                         int T, int NH, int NKV, int tiles, float scale) {
  constexpr int HS = kWgmmaHeadSize, S = kStride<HS>, M = kWgM, R = kWgRows;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T16* k_s = reinterpret_cast<T16*>(SwizzleAligned(smem_raw));
  T16* v_s = k_s + kStages<HS> * kTile * HS;
  T16* q_s = v_s + kStages<HS> * kTile * HS;

  const QueryBlock<R> block(tiles, NH);
  const int bh = block.bh, b = block.b, h = block.h, t0 = block.t0;
  const Geometry<T16> geo = Locate<HS>(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const int wrow = threadIdx.x / 32 * 16;  // the warp's rows in each half: 64 i + wrow
  const float scale2 = scale * kLog2e;

  CopyTile<R, HS>(q_s, geo.q, geo.C3, t0, T);
  float o[M][HS / 8][4];
  float m[M][2], l[M][2];
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) o[i][n][0] = o[i][n][1] = o[i][n][2] = o[i][n][3] = 0.0f;
    m[i][0] = m[i][1] = -INFINITY;
    l[i][0] = l[i][1] = 0.0f;
  }
  uint32_t q_f[M][HS / 16][4];
  const auto step = [&](const T16* k_t, const T16* v_t, int s0) {
    if (s0 == 0) {
#pragma unroll
      for (int i = 0; i < M; ++i) LoadRows<HS, S>(q_f[i], q_s, 64 * i + wrow);
    }
    float s[M][kTile / 8][4];  // the first product of each overwrites it
    // s = q k^T as two 64 x 32 products a half (keys [0, 32) and [32, 64) of the tile). One
    // 64 x 64 product here gave wrong scores on the H100 (deterministically: out 12-47% off in
    // cuda_ops_test), though wgmma_products_test finds that product right on its own, with two
    // halves and from every buffer; the cause is not known, the split costs nothing measurable.
    wgmma::Fence();
#pragma unroll
    for (int i = 0; i < M; ++i) {
      auto& keys_lo = *reinterpret_cast<float(*)[4][4]>(&s[i][0]);
      auto& keys_hi = *reinterpret_cast<float(*)[4][4]>(&s[i][kTile / 16]);
#pragma unroll
      for (int k = 0; k < HS / 16; ++k) {
        wgmma::Mma64x32<T16, 0>(keys_lo, q_f[i][k], wgmma::Descriptor(k_t + 16 * k), k > 0);
        wgmma::Mma64x32<T16, 0>(keys_hi, q_f[i][k],
                                wgmma::Descriptor(k_t + kTile / 2 * HS + 16 * k), k > 0);
      }
    }
    wgmma::Commit();
    wgmma::Wait<0>();
    uint32_t p_a[M][kTile / 16][4];
#pragma unroll
    for (int i = 0; i < M; ++i) {
      const int row0 = t0 + 64 * i + wrow;
      if (s0 + kTile - 1 > row0) {
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            if (s0 + FragCol(n, e) > row0 + FragRow(e)) s[i][n][e] = -INFINITY;
          }
        }
      }
      OnlineSoftmax<kTile, HS>(s[i], m[i], l[i], o[i], scale2);
      PackA<T16, kTile>(p_a[i], s[i]);
    }
    wgmma::Fence();
#pragma unroll
    for (int i = 0; i < M; ++i) {
#pragma unroll
      for (int k = 0; k < kTile / 16; ++k) {
        wgmma::Mma64x64<T16, 1>(o[i], p_a[i][k], wgmma::Descriptor(v_t + 16 * k * HS), true);
      }
    }
    wgmma::Commit();
    wgmma::Wait<0>();
  };
  ForEachKeyTile<HS, true>(k_s, v_s, geo, t0 + R, t0 + R - 1, T, step);
  const size_t C = static_cast<size_t>(NH) * HS;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = QuadSum(l[i][r]);
      inv[r] = 1.0f / sum;
      const int t = t0 + 64 * i + wrow + FragRow(2 * r);
      if (threadIdx.x % 4 == 0 && t < T) {
        lse[static_cast<size_t>(bh) * T + t] = (m[i][r] + log2f(sum)) * kLn2;
      }
    }
    StoreRows<HS>(out + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS, C, o[i],
                  t0 + 64 * i + wrow, T, inv[0], inv[1]);
  }
}

template <typename T16, typename O>
__global__ void __launch_bounds__(kThreads, kMinBlocks<kWgmmaHeadSize, kWgM>)
    TcBackwardDqWgmmaKernel(O* __restrict__ dqkv, float* __restrict__ d_scratch,
                            const O* __restrict__ dout, const T16* __restrict__ dout16,
                            const T16* __restrict__ qkv, const O* __restrict__ out,
                            const float* __restrict__ lse, int T, int NH, int NKV, int tiles,
                            float scale, float* __restrict__ q_parts) {
  constexpr int HS = kWgmmaHeadSize, S = kStride<HS>, M = kWgM, R = kWgRows;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = SwizzleAligned(smem_raw);
  T16* k_s = reinterpret_cast<T16*>(smem);
  T16* v_s = k_s + kStages<HS> * kTile * HS;
  T16* q_s = v_s + kStages<HS> * kTile * HS;
  T16* do_s = q_s + R * S;

  const QueryBlock<R> block(tiles, NH);
  const int bh = block.bh, b = block.b, h = block.h, tile = block.tile, t0 = block.t0;
  const Geometry<T16> geo = Locate<HS>(qkv, b, h, h / (NH / NKV), T, NH, NKV);
  const size_t C = static_cast<size_t>(NH) * HS;
  const size_t head = static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS;
  const O* dout_h = dout + head;
  const O* out_h = out + head;
  const int wrow = threadIdx.x / 32 * 16;  // the warp's rows in each half: 64 i + wrow
  const float scale2 = scale * kLog2e;

  CopyTile<R, HS>(q_s, geo.q, geo.C3, t0, T);
  CopyTile<R, HS>(do_s, dout16 + head, C, t0, T);
  float D[M][2], L[M][2];
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      RowStats<HS>(D[i][r], L[i][r], dout_h, out_h, lse + static_cast<size_t>(bh) * T,
                   d_scratch + static_cast<size_t>(bh) * T, C, t0 + 64 * i + wrow + FragRow(2 * r),
                   T);
    }
  }
  float dq[M][HS / 8][4];
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) dq[i][n][0] = dq[i][n][1] = dq[i][n][2] = dq[i][n][3] = 0.0f;
  }
  uint32_t q_f[M][HS / 16][4], do_f[M][HS / 16][4];
  const auto step = [&](const T16* k_t, const T16* v_t, int s0) {
    if (s0 == 0) {
#pragma unroll
      for (int i = 0; i < M; ++i) {
        LoadRows<HS, S>(q_f[i], q_s, 64 * i + wrow);
        LoadRows<HS, S>(do_f[i], do_s, 64 * i + wrow);
      }
    }
#pragma unroll
    for (int part = 0; part < kTile / kDqPart; ++part) {
      const int c0 = part * kDqPart;
      float s[M][kDqPart / 8][4], dp[M][kDqPart / 8][4];  // overwritten by the first products
      // s in one group, dp in the next: p is taken while dp multiplies.
      wgmma::Fence();
#pragma unroll
      for (int i = 0; i < M; ++i) {
#pragma unroll
        for (int k = 0; k < HS / 16; ++k) {
          wgmma::Mma64x32<T16, 0>(s[i], q_f[i][k], wgmma::Descriptor(k_t + c0 * HS + 16 * k),
                                  k > 0);
        }
      }
      wgmma::Commit();
#pragma unroll
      for (int i = 0; i < M; ++i) {
#pragma unroll
        for (int k = 0; k < HS / 16; ++k) {
          wgmma::Mma64x32<T16, 0>(dp[i], do_f[i][k], wgmma::Descriptor(v_t + c0 * HS + 16 * k),
                                  k > 0);
        }
      }
      wgmma::Commit();
      wgmma::Wait<1>();  // s
#pragma unroll
      for (int i = 0; i < M; ++i) {
        const int row0 = t0 + 64 * i + wrow;
        const bool diagonal = s0 + c0 + kDqPart - 1 > row0;
#pragma unroll
        for (int n = 0; n < kDqPart / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const bool masked = diagonal && s0 + c0 + FragCol(n, e) > row0 + FragRow(e);
            s[i][n][e] = masked ? 0.0f : Exp2(fmaf(s[i][n][e], scale2, -L[i][e / 2]));  // p
          }
        }
      }
      wgmma::Wait<0>();  // dp
      uint32_t ds_a[M][kDqPart / 16][4];
#pragma unroll
      for (int i = 0; i < M; ++i) {
#pragma unroll
        for (int n = 0; n < kDqPart / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) s[i][n][e] *= dp[i][n][e] - D[i][e / 2];  // ds
        }
        PackA<T16, kDqPart>(ds_a[i], s[i]);
      }
      wgmma::Fence();
#pragma unroll
      for (int i = 0; i < M; ++i) {
#pragma unroll
        for (int k = 0; k < kDqPart / 16; ++k) {
          wgmma::Mma64x64<T16, 1>(dq[i], ds_a[i][k], wgmma::Descriptor(k_t + (c0 + 16 * k) * HS),
                                  true);
        }
      }
      wgmma::Commit();
      wgmma::Wait<0>();
    }
  };
  ForEachKeyTile<HS, true>(k_s, v_s, geo, t0 + R, t0 + R - 1, T, step);
#pragma unroll
  for (int i = 0; i < M; ++i) {
    StoreRows<HS>(dqkv + static_cast<size_t>(b) * T * geo.C3 + static_cast<size_t>(h) * HS, geo.C3,
                  dq[i], t0 + 64 * i + wrow, T, scale, scale);
  }
  if (q_parts != nullptr) {  // bf16 dqkv (the launcher's contract)
    float sums[HS / 8][2] = {};
#pragma unroll
    for (int i = 0; i < M; ++i) AddRoundedColumns<HS>(sums, dq[i], t0 + 64 * i + wrow, T, scale);
    StoreColumnSums<HS>(q_parts + (static_cast<size_t>(b) * tiles + tile) * C + h * HS, sums,
                        reinterpret_cast<float*>(smem));
  }
}

}  // namespace

template <typename T16, typename O>
cudaError_t LaunchForwardWgmma(O* out, float* lse, const T16* qkv16, int B, int T, int NH, int NKV,
                               float scale, cudaStream_t stream) {
  if (cudaError_t e = AllowSmem(TcForwardWgmmaKernel<T16, O>, kForwardWgmmaSmem);
      e != cudaSuccess) {
    return e;
  }
  const int tiles = QueryBlocks<kWgmmaHeadSize>(T);
  TcForwardWgmmaKernel<T16, O><<<tiles * B * NH, kThreads, kForwardWgmmaSmem, stream>>>(
      out, lse, qkv16, T, NH, NKV, tiles, scale);
  return cudaGetLastError();
}

template <typename T16, typename O>
cudaError_t LaunchBackwardDqWgmma(O* dqkv, float* d, const O* dout, const T16* dout16,
                                  const T16* qkv16, const O* out, const float* lse, int B, int T,
                                  int NH, int NKV, float scale, float* q_parts,
                                  cudaStream_t stream) {
  if (cudaError_t e = AllowSmem(TcBackwardDqWgmmaKernel<T16, O>, kDqWgmmaSmem); e != cudaSuccess) {
    return e;
  }
  const int tiles = QueryBlocks<kWgmmaHeadSize>(T);
  TcBackwardDqWgmmaKernel<T16, O><<<tiles * B * NH, kThreads, kDqWgmmaSmem, stream>>>(
      dqkv, d, dout, dout16, qkv16, out, lse, T, NH, NKV, tiles, scale, q_parts);
  return cudaGetLastError();
}

template <typename T16, typename O>
cudaError_t LaunchBackwardDkvWgmma(O* dqkv, const float* d, const T16* dout16, const T16* qkv16,
                                   const float* lse, int B, int T, int NH, int NKV, float scale,
                                   float* kv_parts, cudaStream_t stream) {
  if (cudaError_t e = AllowSmem(TcBackwardDkvWgmmaKernel<T16, O>, kDkvWgmmaSmem);
      e != cudaSuccess) {
    return e;
  }
  const int key_tiles = (T + kTile - 1) / kTile;
  TcBackwardDkvWgmmaKernel<T16, O><<<key_tiles * B * NKV, kThreads, kDkvWgmmaSmem, stream>>>(
      dqkv, d, dout16, qkv16, lse, T, NH, NKV, key_tiles, scale, kv_parts);
  return cudaGetLastError();
}

// The launchers' (16-bit operand, output) pairs: bf16 or fp16 operands with fp32 tensors, bf16
// throughout.
#define SPW_WGMMA_ATTENTION(T16, O)                                                                \
  template cudaError_t LaunchForwardWgmma<T16, O>(O*, float*, const T16*, int, int, int, int,      \
                                                  float, cudaStream_t);                            \
  template cudaError_t LaunchBackwardDqWgmma<T16, O>(O*, float*, const O*, const T16*, const T16*, \
                                                     const O*, const float*, int, int, int, int,   \
                                                     float, float*, cudaStream_t);                 \
  template cudaError_t LaunchBackwardDkvWgmma<T16, O>(O*, const float*, const T16*, const T16*,    \
                                                      const float*, int, int, int, int, float,     \
                                                      float*, cudaStream_t);
SPW_WGMMA_ATTENTION(__nv_bfloat16, float)
SPW_WGMMA_ATTENTION(__half, float)
SPW_WGMMA_ATTENTION(__nv_bfloat16, __nv_bfloat16)
#undef SPW_WGMMA_ATTENTION

}  // namespace spillway::kernels::cuda::tc
