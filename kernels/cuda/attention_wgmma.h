// Launchers of attention_wgmma.cu's kernels (head size kWgmmaHeadSize, sm_90a), which
// attention_tc.cu's dispatch calls in place of its mma.sync kernels there: the same grids, scratch
// (d: the backward's row values D), bias-gradient parts and contract (kernels/cuda/launchers.h).
// T16: the 16-bit operand type (__nv_bfloat16 or __half); O: out, dout and dqkv's type (float, or
// __nv_bfloat16 with bf16 operands). Each returns the launch's error.
#pragma once

#include <cuda_runtime.h>

namespace spillway::kernels::cuda::tc {

inline constexpr int kWgmmaHeadSize = 64;

template <typename T16, typename O>
cudaError_t LaunchForwardWgmma(O* out, float* lse, const T16* qkv16, int B, int T, int NH, int NKV,
                               float scale, cudaStream_t stream);

template <typename T16, typename O>
cudaError_t LaunchBackwardDqWgmma(O* dqkv, float* d, const O* dout, const T16* dout16,
                                  const T16* qkv16, const O* out, const float* lse, int B, int T,
                                  int NH, int NKV, float scale, float* q_parts,
                                  cudaStream_t stream);

template <typename T16, typename O>
cudaError_t LaunchBackwardDkvWgmma(O* dqkv, const float* d, const T16* dout16, const T16* qkv16,
                                   const float* lse, int B, int T, int NH, int NKV, float scale,
                                   float* kv_parts, cudaStream_t stream);

}  // namespace spillway::kernels::cuda::tc
