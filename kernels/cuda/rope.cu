// Rotary position embeddings (Hugging Face Llama's rotate_half convention), forward and
// backward, in place on the query and key heads of the GQA qkv layout (kernels/ops.h).
//
// One thread per (row b*T + t, frequency i < hs/2): it computes the angle t * theta^(-2i/hs)
// and its cos and sin in double, as the CPU backend does, rounds them to float and rotates the
// pair (i, i + hs/2) of every query and key head of the row. Consecutive threads touch
// consecutive floats of a head.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

__global__ void RopeKernel(float* qkv, int T, int heads, int row_width, int hs, double theta,
                           float sign, size_t work) {
  const int half = hs / 2;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < work;
       idx += stride) {
    const size_t row = idx / half;
    const int i = static_cast<int>(idx % half);
    const int t = static_cast<int>(row % T);
    const double angle = static_cast<double>(t) * pow(theta, -2.0 * i / hs);
    const float c = static_cast<float>(cos(angle));
    const float s = sign * static_cast<float>(sin(angle));
    float* x0 = qkv + row * row_width + i;
    for (int h = 0; h < heads; ++h) {
      float* p = x0 + static_cast<size_t>(h) * hs;
      const float a = p[0], b = p[half];
      p[0] = a * c - b * s;
      p[half] = b * c + a * s;
    }
  }
}

cudaError_t LaunchRope(float* qkv, int B, int T, int NH, int NKV, int hs, double theta, float sign,
                       cudaStream_t stream) {
  if (B <= 0 || T <= 0 || NH <= 0 || hs <= 0) return cudaSuccess;
  if (NKV <= 0 || hs % 2 != 0) return cudaErrorInvalidValue;
  const size_t work = static_cast<size_t>(B) * T * (hs / 2);
  RopeKernel<<<GridStrideBlocks(work), kGridStrideThreads, 0, stream>>>(
      qkv, T, NH + NKV, (NH + 2 * NKV) * hs, hs, theta, sign, work);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchRopeForward(float* qkv, int B, int T, int NH, int NKV, int hs, double theta,
                              cudaStream_t stream) {
  return LaunchRope(qkv, B, T, NH, NKV, hs, theta, 1.0f, stream);
}

cudaError_t LaunchRopeBackward(float* dqkv, int B, int T, int NH, int NKV, int hs, double theta,
                               cudaStream_t stream) {
  return LaunchRope(dqkv, B, T, NH, NKV, hs, theta, -1.0f, stream);
}

}  // namespace spillway::kernels::cuda
