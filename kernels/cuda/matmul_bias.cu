// Bias gradient of the matmul: dbias (OC) += column sums of dout (N,OC), in a fixed order
// (no atomics), so results are bitwise reproducible.
//
// Two stages when scratch allows, so that the whole GPU reads dout (one block per 32 columns
// alone gives GPT-2's OC = 768 only 24 blocks): the rows are cut into R chunks (R fixed by N, OC
// and the scratch size), block (column tile, chunk) writes its chunk's column sums to
// scratch[chunk][col], and a second kernel adds the R partial sums of each column in ascending
// chunk order into dbias. R = 1 is the single-stage kernel over all rows.
//
// The kernel visits every value of dout once, so it also writes the bf16 copy of dout that the
// bf16 GEMMs of the same backward read, when asked: one read of dout for both. dout may also be
// bf16 already (its producer wrote it so): then it is only summed, widened exactly.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "kernels/cuda/launchers.h"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

constexpr int kCols = 32;       // columns per block (threadIdx.x): coalesced row segments
constexpr int kRowGroups = 32;  // row groups per block (threadIdx.y)
constexpr int kTargetBlocks = 1024;
constexpr int kMaxChunks = 64;
constexpr int kMinRowsPerChunk = 256;

// Block (kCols, kRowGroups) owns columns [blockIdx.x * kCols, +kCols) and the rows
// [blockIdx.y * rows_per_chunk, +rows_per_chunk). Thread (x, y) sums its rows y, y + kRowGroups,
// ... in ascending order; the kRowGroups partial sums are then added in ascending y by row
// group 0, which writes out[blockIdx.y * OC + col] (accumulate: out[col] += instead). With
// `copy` (fp32 dout only), every value read is also written there rounded to bf16 (nearest even).
template <typename InT>
__global__ void __launch_bounds__(kCols* kRowGroups)
    BiasGradientKernel(float* __restrict__ out, __nv_bfloat16* __restrict__ copy,
                       const InT* __restrict__ dout, int N, int OC, int rows_per_chunk,
                       bool accumulate) {
  __shared__ float partial[kRowGroups][kCols + 1];
  const int col = blockIdx.x * kCols + threadIdx.x;
  const int begin = static_cast<int>(blockIdx.y) * rows_per_chunk;
  const int end = min(N, begin + rows_per_chunk);
  float sum = 0.0f;
  if (col < OC) {
    int n = begin + threadIdx.y;
    // Four rows per iteration for loads in flight; adds stay in row order.
    for (; n + 3 * kRowGroups < end; n += 4 * kRowGroups) {
      float v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        v[u] = LoadAs(dout + static_cast<size_t>(n + u * kRowGroups) * OC + col);
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) sum += v[u];
      if (copy != nullptr) {
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          copy[static_cast<size_t>(n + u * kRowGroups) * OC + col] = __float2bfloat16_rn(v[u]);
        }
      }
    }
    for (; n < end; n += kRowGroups) {
      const float v = LoadAs(dout + static_cast<size_t>(n) * OC + col);
      sum += v;
      if (copy != nullptr) copy[static_cast<size_t>(n) * OC + col] = __float2bfloat16_rn(v);
    }
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < OC) {
    float total = 0.0f;
#pragma unroll
    for (int y = 0; y < kRowGroups; ++y) total += partial[y][threadIdx.x];
    if (accumulate) {
      out[col] += total;
    } else {
      out[static_cast<size_t>(blockIdx.y) * OC + col] = total;
    }
  }
}

// dbias[col] += sum over chunks r = 0, 1, ... of partials[r * OC + col].
__global__ void BiasGradientFinishKernel(float* __restrict__ dbias,
                                         const float* __restrict__ partials, int OC, int chunks) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= OC) return;
  float total = 0.0f;
  for (int r = 0; r < chunks; ++r) total += partials[static_cast<size_t>(r) * OC + col];
  dbias[col] += total;
}

// The number of row chunks for (N, OC) with `scratch_floats` of scratch.
int Chunks(int N, int OC, size_t scratch_floats) {
  const int tiles = (OC + kCols - 1) / kCols;
  int chunks = std::min((kTargetBlocks + tiles - 1) / tiles, kMaxChunks);
  chunks = std::min(chunks, std::max(1, N / kMinRowsPerChunk));
  const size_t by_scratch = scratch_floats / static_cast<size_t>(OC);
  if (by_scratch < static_cast<size_t>(chunks)) chunks = static_cast<int>(by_scratch);
  return std::max(chunks, 1);
}

template <typename InT>
cudaError_t Launch(float* dbias, const InT* dout, int N, int OC, float* scratch,
                   size_t scratch_floats, __nv_bfloat16* copy, cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return cudaGetLastError();
  const unsigned tiles = static_cast<unsigned>((OC + kCols - 1) / kCols);
  const int chunks = scratch == nullptr ? 1 : Chunks(N, OC, scratch_floats);
  if (chunks == 1) {
    BiasGradientKernel<<<dim3(tiles, 1), dim3(kCols, kRowGroups), 0, stream>>>(dbias, copy, dout, N,
                                                                               OC, N, true);
    return cudaGetLastError();
  }
  const int rows_per_chunk = (N + chunks - 1) / chunks;
  BiasGradientKernel<<<dim3(tiles, static_cast<unsigned>(chunks)), dim3(kCols, kRowGroups), 0,
                       stream>>>(scratch, copy, dout, N, OC, rows_per_chunk, false);
  constexpr int kFinishThreads = 256;
  BiasGradientFinishKernel<<<(OC + kFinishThreads - 1) / kFinishThreads, kFinishThreads, 0,
                             stream>>>(dbias, scratch, OC, chunks);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchBiasGradient(float* dbias, const float* dout, int N, int OC, float* scratch,
                               size_t scratch_floats, uint16_t* bf16_copy, cudaStream_t stream) {
  return Launch(dbias, dout, N, OC, scratch, scratch_floats,
                reinterpret_cast<__nv_bfloat16*>(bf16_copy), stream);
}

cudaError_t LaunchBiasGradientBf16(float* dbias, const uint16_t* dout, int N, int OC,
                                   float* scratch, size_t scratch_floats, cudaStream_t stream) {
  return Launch(dbias, reinterpret_cast<const __nv_bfloat16*>(dout), N, OC, scratch, scratch_floats,
                static_cast<__nv_bfloat16*>(nullptr), stream);
}

}  // namespace spillway::kernels::cuda
