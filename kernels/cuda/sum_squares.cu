// Sums of squares and plain sums in double, in a fixed order, added to a device double.
//
// Stage 1: G = SumSquaresScratchDoubles(n) blocks (a function of n only). Thread g of the grid
// adds, in order, the quads (4 consecutive values) g, g + 256 G, ... (a float4 load when x is
// 16-byte aligned, scalar loads otherwise, the same adds either way); each block adds its
// threads by a fixed shuffle/shared-memory tree into scratch[block]. Stage 2: one block adds
// the G partials the same way and adds the result (for AddMean: float(sum / divisor)) to *out.
// LaunchAddSumSquaresParts runs stage 1 of several parts (anywhere in memory) in one grid (each
// part's blocks as its own launch would have them) and stage 2 of all parts in one block, their
// sums added in part order.
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

// Block `block` of `blocks`: its threads' fixed-order sums of stage 1 (valid in thread 0).
template <bool kSquare>
__device__ __forceinline__ double PartialSum(const float* x, size_t n, bool vec, size_t block,
                                             size_t blocks) {
  const size_t quads = (n + 3) / 4;
  const size_t stride = blocks * kThreads;
  double acc = 0.0;
  for (size_t q = block * kThreads + threadIdx.x; q < quads; q += stride) {
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
  return BlockSum(acc);
}

template <bool kSquare>
__global__ void __launch_bounds__(kThreads)
    SumPartialKernel(double* partial, const float* x, size_t n, bool vec) {
  const double sum = PartialSum<kSquare>(x, n, vec, blockIdx.x, gridDim.x);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// Stage 2's sum of `blocks` partials (valid in thread 0).
__device__ __forceinline__ double FinalSum(const double* partial, int blocks) {
  double acc = 0.0;
  for (int b = threadIdx.x; b < blocks; b += kThreads) acc += partial[b];
  return BlockSum(acc);
}

// divisor 0: adds the sum; otherwise adds float(sum / divisor).
__global__ void __launch_bounds__(kThreads)
    SumFinalKernel(double* out, const double* partial, int blocks, size_t divisor) {
  const double sum = FinalSum(partial, blocks);
  if (threadIdx.x != 0) return;
  *out += divisor == 0 ? sum : static_cast<double>(static_cast<float>(sum / divisor));
}

// The parts of LaunchAddSumSquaresParts: part k has blocks [first_block[k], first_block[k+1]) of
// the stage-1 grid, as many as LaunchAddSumSquares would give it.
struct PartTable {
  int parts;
  unsigned first_block[kSumPartsMax + 1];
  const float* x[kSumPartsMax];
  size_t n[kSumPartsMax];
};

__global__ void __launch_bounds__(kThreads)
    SumSquaresPartsPartialKernel(double* partial, PartTable t) {
  int lo = 0, hi = t.parts - 1;  // the part whose blocks hold blockIdx.x
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (t.first_block[mid] <= blockIdx.x) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const float* x = t.x[lo];
  const bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0;
  const double sum = PartialSum<true>(x, t.n[lo], vec, blockIdx.x - t.first_block[lo],
                                      t.first_block[lo + 1] - t.first_block[lo]);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// Stage 2 of every part in one block, a warp per part: lane l loads at once the partials that
// threads l, l + 32, ... of SumFinalKernel would add (kMaxBlocks of them at most), adds them into
// one accumulator per emulated thread in SumFinalKernel's order, takes each accumulator through
// BlockSum's shuffle tree and adds the results in warp order: each part's sum is FinalSum's bit
// for bit. Thread 0 then adds the parts' sums to *out in part order.
constexpr int kFinalThreads = 512;
constexpr int kFinalLoads = static_cast<int>(kMaxBlocks / 32);

__global__ void __launch_bounds__(kFinalThreads)
    SumSquaresPartsFinalKernel(double* out, const double* partial, PartTable t) {
  __shared__ double s_part[kSumPartsMax];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int k = warp; k < t.parts; k += kFinalThreads / 32) {
    const double* p = partial + t.first_block[k];
    const int blocks = static_cast<int>(t.first_block[k + 1] - t.first_block[k]);
    double v[kFinalLoads];
#pragma unroll
    for (int i = 0; i < kFinalLoads; ++i) v[i] = lane + 32 * i < blocks ? p[lane + 32 * i] : 0.0;
    double sum = 0.0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      double acc = 0.0;
#pragma unroll
      for (int i = w; i < kFinalLoads; i += kWarps) {
        if (lane + 32 * i < blocks) acc += v[i];
      }
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) {
        acc += __shfl_xor_sync(0xffffffffu, acc, offset);
      }
      sum = w == 0 ? acc : sum + acc;
    }
    if (lane == 0) s_part[k] = sum;
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  double total = *out;
  for (int k = 0; k < t.parts; ++k) total += s_part[k];
  *out = total;
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

size_t SumSquaresPartsScratchDoubles(const SumPart* parts, size_t count) {
  size_t doubles = 0;
  for (size_t k = 0; k < count; ++k) doubles += SumSquaresScratchDoubles(parts[k].n);
  return doubles;
}

cudaError_t LaunchAddSumSquaresParts(double* out, const SumPart* parts, size_t count,
                                     double* scratch, cudaStream_t stream) {
  PartTable t{};
  t.first_block[0] = 0;
  for (size_t k = 0; k < count; ++k) {
    if (parts[k].n == 0) continue;  // adds nothing, as LaunchAddSumSquares
    t.x[t.parts] = parts[k].x;
    t.n[t.parts] = parts[k].n;
    t.first_block[t.parts + 1] =
        t.first_block[t.parts] + static_cast<unsigned>(SumSquaresScratchDoubles(parts[k].n));
    ++t.parts;
  }
  if (t.parts == 0) return cudaSuccess;
  SumSquaresPartsPartialKernel<<<t.first_block[t.parts], kThreads, 0, stream>>>(scratch, t);
  SumSquaresPartsFinalKernel<<<1, kFinalThreads, 0, stream>>>(out, scratch, t);
  return cudaGetLastError();
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
