// RMSNorm (Llama) over the last dimension, forward and backward; the structure of layernorm.cu.
//
// Forward and the dinp part of the backward: one warp per row, each lane a strided slice of the
// row, row sums by a butterfly shuffle (every lane ends with the same, fixed-order sum).
// dweight (a sum over the N rows): a block owns 8 channels and 64 row lanes; row lane r adds
// rows r, r + 64, ... in order, then a fixed shared-memory tree adds the 64 lanes. No atomics,
// so the results are bitwise reproducible.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

constexpr int kRowThreads = 256;  // 8 rows (warps) per block
constexpr int kRowsPerBlock = kRowThreads / 32;

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void __launch_bounds__(kRowThreads)
    RmsNormForwardKernel(float* out, float* rstd, const float* inp, const float* weight, float eps,
                         int N, int C) {
  const int lane = threadIdx.x % 32;
  const size_t row = static_cast<size_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<size_t>(N)) return;  // whole warp
  const float* x = inp + row * C;
  float* o = out + row * C;
  float sq = 0.0f;
  for (int c = lane; c < C; c += 32) sq += x[c] * x[c];
  const float s = 1.0f / sqrtf(WarpSum(sq) / C + eps);
  for (int c = lane; c < C; c += 32) o[c] = x[c] * s * weight[c];
  if (lane == 0) rstd[row] = s;
}

__global__ void __launch_bounds__(kRowThreads)
    RmsNormBackwardInputKernel(float* dinp, const float* dout, const float* inp,
                               const float* weight, const float* rstd, int N, int C) {
  const int lane = threadIdx.x % 32;
  const size_t row = static_cast<size_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<size_t>(N)) return;  // whole warp
  const float* x = inp + row * C;
  const float* d = dout + row * C;
  float* di = dinp + row * C;
  const float s = rstd[row];
  float dnorm_norm_sum = 0.0f;
  for (int c = lane; c < C; c += 32) dnorm_norm_sum += (d[c] * weight[c]) * (x[c] * s);
  const float dnorm_norm_mean = WarpSum(dnorm_norm_sum) / C;
  for (int c = lane; c < C; c += 32) {
    di[c] += (d[c] * weight[c] - (x[c] * s) * dnorm_norm_mean) * s;
  }
}

constexpr int kParamChannels = 8;  // one 32-byte sector of a row
constexpr int kParamRowLanes = 64;
constexpr int kParamThreads = kParamChannels * kParamRowLanes;

__global__ void __launch_bounds__(kParamThreads)
    RmsNormBackwardWeightKernel(float* dweight, const float* dout, const float* inp,
                                const float* rstd, int N, int C) {
  __shared__ float s_dw[kParamRowLanes][kParamChannels];
  const int ch = threadIdx.x % kParamChannels;
  const int r = threadIdx.x / kParamChannels;
  const int c = blockIdx.x * kParamChannels + ch;
  float dw = 0.0f;
  if (c < C) {
    int n = r;
    // Four rows per iteration for loads in flight; adds stay in row order.
    for (; n + 3 * kParamRowLanes < N; n += 4 * kParamRowLanes) {
      float dv[4], xv[4], sv[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const size_t idx = static_cast<size_t>(n + u * kParamRowLanes) * C + c;
        dv[u] = dout[idx];
        xv[u] = inp[idx];
        sv[u] = rstd[n + u * kParamRowLanes];
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) dw += dv[u] * (xv[u] * sv[u]);
    }
    for (; n < N; n += kParamRowLanes) {
      const size_t idx = static_cast<size_t>(n) * C + c;
      dw += dout[idx] * (inp[idx] * rstd[n]);
    }
  }
  s_dw[r][ch] = dw;
  __syncthreads();
#pragma unroll
  for (int stride = kParamRowLanes / 2; stride > 0; stride /= 2) {
    if (r < stride) s_dw[r][ch] += s_dw[r + stride][ch];
    __syncthreads();
  }
  if (r == 0 && c < C) dweight[c] += s_dw[0][ch];
}

}  // namespace

cudaError_t LaunchRmsNormForward(float* out, float* rstd, const float* inp, const float* weight,
                                 float eps, int N, int C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  const unsigned blocks = (static_cast<unsigned>(N) + kRowsPerBlock - 1) / kRowsPerBlock;
  RmsNormForwardKernel<<<blocks, kRowThreads, 0, stream>>>(out, rstd, inp, weight, eps, N, C);
  return cudaGetLastError();
}

cudaError_t LaunchRmsNormBackward(float* dinp, float* dweight, const float* dout, const float* inp,
                                  const float* weight, const float* rstd, int N, int C,
                                  cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  const unsigned row_blocks = (static_cast<unsigned>(N) + kRowsPerBlock - 1) / kRowsPerBlock;
  RmsNormBackwardInputKernel<<<row_blocks, kRowThreads, 0, stream>>>(dinp, dout, inp, weight, rstd,
                                                                     N, C);
  const unsigned param_blocks = (static_cast<unsigned>(C) + kParamChannels - 1) / kParamChannels;
  RmsNormBackwardWeightKernel<<<param_blocks, kParamThreads, 0, stream>>>(dweight, dout, inp, rstd,
                                                                          N, C);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
