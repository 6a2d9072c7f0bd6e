// Sums of squares and plain sums in double, in a fixed order, added to a device double.
//
// Stage 1: G = SumSquaresScratchDoubles(n) blocks (a function of n only). Thread g of the grid
// adds, in order, the quads (4 consecutive values) g, g + 256 G, ... (a float4 load when x is
// 16-byte aligned, scalar loads otherwise, the same adds either way); each block adds its
// threads by a fixed shuffle/shared-memory tree into scratch[block]. Stage 2: one block adds
// the G partials the same way and adds the result (for AddMean: float(sum / divisor)) to *out.
// No atomics: bitwise reproducible.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr size_t kMaxBlocks = 1024;
constexpr size_t kValuesPerBlockMin = size_t{kThreads} * 16;

// Fixed-order sum over the block; the result is valid in thread 0.
__device__ __forceinline__ double BlockSum(double v) {
  __shared__ double s_warp[kWarps];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) s_warp[threadIdx.x / 32] = v;
  __syncthreads();
  double sum = 0.0;
  if (threadIdx.x == 0) {
    sum = s_warp[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) sum += s_warp[w];
  }
  return sum;
}

template <bool kSquare>
__device__ __forceinline__ double Sq(float x) {
  const double d = x;
  return kSquare ? d * d : d;
}

template <bool kSquare>
__global__ void __launch_bounds__(kThreads)
    SumPartialKernel(double* partial, const float* x, size_t n, bool vec) {
  const size_t quads = (n + 3) / 4;
  const size_t stride = static_cast<size_t>(gridDim.x) * kThreads;
  double acc = 0.0;
  for (size_t q = static_cast<size_t>(blockIdx.x) * kThreads + threadIdx.x; q < quads;
       q += stride) {
    const size_t i = 4 * q;
    if (i + 4 <= n) {
      float4 v;
      if (vec) {
        v = reinterpret_cast<const float4*>(x)[q];
      } else {
        v = make_float4(x[i], x[i + 1], x[i + 2], x[i + 3]);
      }
      acc += Sq<kSquare>(v.x);
      acc += Sq<kSquare>(v.y);
      acc += Sq<kSquare>(v.z);
      acc += Sq<kSquare>(v.w);
    } else {
      for (size_t j = i; j < n; ++j) acc += Sq<kSquare>(x[j]);
    }
  }
  const double sum = BlockSum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// divisor 0: adds the sum; otherwise adds float(sum / divisor).
__global__ void __launch_bounds__(kThreads)
    SumFinalKernel(double* out, const double* partial, int blocks, size_t divisor) {
  double acc = 0.0;
  for (int b = threadIdx.x; b < blocks; b += kThreads) acc += partial[b];
  const double sum = BlockSum(acc);
  if (threadIdx.x != 0) return;
  *out += divisor == 0 ? sum : static_cast<double>(static_cast<float>(sum / divisor));
}

template <bool kSquare>
cudaError_t LaunchSum(double* out, const float* x, size_t n, size_t divisor, double* scratch,
                      cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const size_t blocks = SumSquaresScratchDoubles(n);
  const bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0;
  SumPartialKernel<kSquare>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(scratch, x, n, vec);
  SumFinalKernel<<<1, kThreads, 0, stream>>>(out, scratch, static_cast<int>(blocks), divisor);
  return cudaGetLastError();
}

}  // namespace

size_t SumSquaresScratchDoubles(size_t n) {
  if (n == 0) return 0;
  const size_t blocks = (n + kValuesPerBlockMin - 1) / kValuesPerBlockMin;
  return blocks < kMaxBlocks ? blocks : kMaxBlocks;
}

cudaError_t LaunchAddSumSquares(double* out, const float* x, size_t n, double* scratch,
                                cudaStream_t stream) {
  return LaunchSum<true>(out, x, n, 0, scratch, stream);
}

namespace {

__global__ void AddInOrderKernel(double* out, const double* values, size_t n) {
  double acc = *out;
  for (size_t i = 0; i < n; ++i) acc += values[i];
  *out = acc;
}

}  // namespace

cudaError_t LaunchAddInOrder(double* out, const double* values, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  AddInOrderKernel<<<1, 1, 0, stream>>>(out, values, n);
  return cudaGetLastError();
}

cudaError_t LaunchAddMean(double* out, const float* x, size_t n, size_t divisor, double* scratch,
                          cudaStream_t stream) {
  if (divisor == 0) return cudaSuccess;
  return LaunchSum<false>(out, x, n, divisor, scratch, stream);
}

}  // namespace spillway::kernels::cuda
