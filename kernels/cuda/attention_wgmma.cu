// Causal attention's head-size-64 dk/dv kernel on Hopper's warpgroup products (wgmma.mma_async,
// sm_90a; kernels/cuda/wgmma.cuh): attention_tc.cu's dk/dv kernel (blocks, steps, loop orders,
// masking, bias-gradient parts, scratch and contract alike) with each product one warpgroup
// instruction instead of mma.sync's per-warp tiles and ldmatrix loads of B. The block's 4 warps
// are one warpgroup; its A operands (k and v, and p and ds) stay in registers in the mma fragment
// layout, its B operands (the q and dout tiles that stream through the block) sit in
// 128-byte-swizzled shared tiles. Fixed loop orders, no atomics: bitwise reproducible.
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
  const size_t C = static_cast<size_t>(NH) * HS;
  const int wrow = threadIdx.x / 32 * 16;
  const float scale2 = scale * kLog2e;

  // Step i's tiles and row values go to buffer i % kStages.
  const auto issue = [&](int i) {
    const int h = block.Head(i), t0 = block.Rows(i), buf = i % kStages<HS>;
    const Geometry<T16> geo = Locate<HS>(qkv, b, h, g, T, NH, NKV);
    CopySwizzledTile<QR>(q_buf + buf * QR * HS, geo.q, geo.C3, t0, T);
    CopySwizzledTile<QR>(do_buf + buf * QR * HS,
                         dout16 + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * HS, C,
                         t0, T);
    StoreStepRowValues<QR>(lse_buf + buf * QR, d_buf + buf * QR, lse, d_scratch,
                           static_cast<size_t>(b) * NH + h, t0, T);
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
      float st[kDkvPart / 8][4] = {}, dpt[kDkvPart / 8][4] = {};
      wgmma::Fence();
#pragma unroll
      for (int k = 0; k < HS / 16; ++k) {
        wgmma::Mma64x32<T16, 0>(st, k_f[k], wgmma::Descriptor(q_s + 16 * k), k > 0);
      }
#pragma unroll
      for (int k = 0; k < HS / 16; ++k) {
        wgmma::Mma64x32<T16, 0>(dpt, v_f[k], wgmma::Descriptor(do_s + 16 * k), k > 0);
      }
      wgmma::Commit();
      wgmma::Wait<0>();
#pragma unroll
      for (int n = 0; n < kDkvPart / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = FragCol(n, e);
          const bool masked = diagonal && t0 + r0 + c < s0 + wrow + FragRow(e);
          const float p = masked ? 0.0f : Exp2(fmaf(st[n][e], scale2, -lse_s[c]));
          st[n][e] = p;
          dpt[n][e] = p * (dpt[n][e] - d_s[c]);  // ds^T
        }
      }
      uint32_t p_a[2][4], ds_a[2][4];
      PackA<T16, kDkvPart>(p_a, st);
      PackA<T16, kDkvPart>(ds_a, dpt);
      wgmma::Fence();
#pragma unroll
      for (int k = 0; k < kDkvPart / 16; ++k) {
        wgmma::Mma64x64<T16, 1>(dv, p_a[k], wgmma::Descriptor(do_s + 16 * k * HS), true);
      }
#pragma unroll
      for (int k = 0; k < kDkvPart / 16; ++k) {
        wgmma::Mma64x64<T16, 1>(dk, ds_a[k], wgmma::Descriptor(q_s + 16 * k * HS), true);
      }
      wgmma::Commit();
      wgmma::Wait<0>();
    }
  }
  StoreKeyGradients<HS>(dqkv, kv_parts, dk, dv, block, tiles, T, NH, NKV, geo0.C3, scale, wrow,
                        reinterpret_cast<float*>(smem));
}

}  // namespace

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
#define SPW_WGMMA_ATTENTION(T16, O)                                                             \
  template cudaError_t LaunchBackwardDkvWgmma<T16, O>(O*, const float*, const T16*, const T16*, \
                                                      const float*, int, int, int, int, float,  \
                                                      float*, cudaStream_t);
SPW_WGMMA_ATTENTION(__nv_bfloat16, float)
SPW_WGMMA_ATTENTION(__half, float)
SPW_WGMMA_ATTENTION(__nv_bfloat16, __nv_bfloat16)
#undef SPW_WGMMA_ATTENTION

}  // namespace spillway::kernels::cuda::tc
