// Bias gradient of the matmul: dbias (OC) += column sums of dout (N,OC), in a fixed order
// (no atomic adds of values), so results are bitwise reproducible.
//
// The rows are cut into R chunks (R fixed by N, OC and the scratch size) so that the whole GPU
// reads dout (one block per column tile alone gives GPT-2's OC = 768 six blocks): block
// (column tile, chunk) writes its chunk's column sums to the scratch, and the tile's last block
// to finish (an arrival counter per tile) adds the R partial sums of each of its columns, in a
// fixed order, into dbias and resets the counter. R = 1: one block per tile adds into dbias.
//
// A thread reads 4 adjacent columns at once (8 or 16 bytes) where OC and the pointers allow, else
// one. The kernel visits every value of dout once, so it also writes the bf16 copy of dout that
// the bf16 GEMMs of the same backward read, when asked: one read of dout for both. dout may also
// be bf16 already (its producer wrote it so): then it is only summed, widened exactly.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"
#include "kernels/cuda/store_as.cuh"

namespace spillway::kernels::cuda {
namespace {

constexpr int kCols = 32;       // column groups per block (threadIdx.x): coalesced row segments
constexpr int kRowGroups = 32;  // row groups per block (threadIdx.y)
constexpr int kBlocksPerSm = 2048 / (kCols * kRowGroups);  // resident at once (sm_90)
constexpr int kMaxChunks = 64;
constexpr int kMinRowsPerChunk = 256;
// Arrival counters at the scratch's end, one per column tile: a launch with more tiles than
// the GPU holds blocks at once has one chunk, so it never counts.
constexpr int kCounters = static_cast<int>(kBiasGradientCounters);

// V adjacent columns of a row as floats, and their bf16 copy.
template <int V, typename InT>
__device__ __forceinline__ void LoadColumns(float (&v)[V], const InT* p) {
  if constexpr (V == 4) {
    const float4 q = LoadQuadAs(p, 0);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    v[0] = LoadAs(p);
  }
}
template <int V>
__device__ __forceinline__ void StoreColumns(__nv_bfloat16* p, const float (&v)[V]) {
  if constexpr (V == 4) {
    StoreQuadAs(p, 0, make_float4(v[0], v[1], v[2], v[3]));
  } else {
    StoreAs(p, v[0]);
  }
}

// Block (kCols, kRowGroups) owns columns [blockIdx.x * kCols * V, +kCols * V) (thread x the V
// from column (blockIdx.x * kCols + x) * V) and rows [blockIdx.y * rows_per_chunk,
// +rows_per_chunk). Thread (x, y) sums its rows y, y + kRowGroups, ... in ascending order; the
// kRowGroups partial sums of a column are then added in ascending y. One chunk: dbias += that.
// Else the sums go to partials[blockIdx.y * OC + col], and the tile's last block adds, per column,
// the chunks r = g, g + G, ... (G = kRowGroups / V groups g, each in ascending r) and then the G
// group sums in ascending g into dbias.
template <typename InT, int V>
__global__ void __launch_bounds__(kCols* kRowGroups)
    BiasGradientKernel(float* __restrict__ dbias, float* __restrict__ partials,
                       unsigned* __restrict__ arrivals, __nv_bfloat16* __restrict__ copy,
                       const InT* __restrict__ dout, int N, int OC, int rows_per_chunk) {
  constexpr int kTileCols = kCols * V;
  __shared__ float partial[kRowGroups][kTileCols + 1];
  __shared__ bool last;
  const int tile0 = static_cast<int>(blockIdx.x) * kTileCols;
  const int col = tile0 + static_cast<int>(threadIdx.x) * V;
  const int begin = static_cast<int>(blockIdx.y) * rows_per_chunk;
  const int end = min(N, begin + rows_per_chunk);
  float sum[V] = {};
  if (col < OC) {
    int n = begin + threadIdx.y;
    // Four rows per iteration for loads in flight; adds stay in row order.
    for (; n + 3 * kRowGroups < end; n += 4 * kRowGroups) {
      float v[4][V];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        LoadColumns<V>(v[u], dout + static_cast<size_t>(n + u * kRowGroups) * OC + col);
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
#pragma unroll
        for (int k = 0; k < V; ++k) sum[k] += v[u][k];
      }
      if (copy != nullptr) {
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          StoreColumns<V>(copy + static_cast<size_t>(n + u * kRowGroups) * OC + col, v[u]);
        }
      }
    }
    for (; n < end; n += kRowGroups) {
      float v[V];
      LoadColumns<V>(v, dout + static_cast<size_t>(n) * OC + col);
#pragma unroll
      for (int k = 0; k < V; ++k) sum[k] += v[k];
      if (copy != nullptr) StoreColumns<V>(copy + static_cast<size_t>(n) * OC + col, v);
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) partial[threadIdx.y][threadIdx.x * V + k] = sum[k];
  __syncthreads();
  // Thread (x, y < V) adds the kRowGroups sums of column tile0 + x * V + y... in the x-th group
  // of V: column c = x * V + y of the tile.
  const int c = static_cast<int>(threadIdx.x) * V + static_cast<int>(threadIdx.y);
  const bool adder = threadIdx.y < V && tile0 + c < OC;
  float total = 0.0f;
  if (adder) {
#pragma unroll
    for (int y = 0; y < kRowGroups; ++y) total += partial[y][c];
  }
  if (gridDim.y == 1) {
    if (adder) dbias[tile0 + c] += total;
    return;
  }
  if (adder) partials[static_cast<size_t>(blockIdx.y) * OC + tile0 + c] = total;
  __threadfence();  // the partial sums are visible before the arrival that may finish the tile
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0) {
    last = atomicAdd(&arrivals[blockIdx.x], 1u) == gridDim.y - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  constexpr int kGroups = kRowGroups / V;
  const int g = static_cast<int>(threadIdx.y) / V;
  const int gc = static_cast<int>(threadIdx.x) * V + static_cast<int>(threadIdx.y) % V;
  float group_sum = 0.0f;
  if (tile0 + gc < OC) {
    for (int r = g; r < static_cast<int>(gridDim.y); r += kGroups) {
      group_sum += __ldcg(partials + static_cast<size_t>(r) * OC + tile0 + gc);
    }
  }
  __syncthreads();  // every adder has read `partial` above
  partial[g][gc] = group_sum;
  __syncthreads();
  if (adder) {
    float sum_of_groups = 0.0f;
#pragma unroll
    for (int gg = 0; gg < kGroups; ++gg) sum_of_groups += partial[gg][c];
    dbias[tile0 + c] += sum_of_groups;
  }
  if (threadIdx.x == 0 && threadIdx.y == 0) arrivals[blockIdx.x] = 0;
}

// The number of row chunks for (N, OC) over `tiles` column tiles with `partial_floats` of
// scratch for the partial sums: as many blocks as the GPU holds at once (one wave of equal
// blocks), within the limits above.
int Chunks(int N, int OC, int tiles, size_t partial_floats) {
  int c =
      tiles > kCounters ? 1 : std::min(kBlocksPerSm * MultiprocessorCount() / tiles, kMaxChunks);
  c = std::min(c, std::max(1, N / kMinRowsPerChunk));
  const size_t by_scratch = partial_floats / static_cast<size_t>(OC);
  if (by_scratch < static_cast<size_t>(c)) c = static_cast<int>(by_scratch);
  return std::max(c, 1);
}

template <typename InT, int V>
cudaError_t Launch(float* dbias, const InT* dout, int N, int OC, float* scratch,
                   size_t scratch_floats, __nv_bfloat16* copy, cudaStream_t stream) {
  const int tiles = (OC + kCols * V - 1) / (kCols * V);
  const bool counted = scratch != nullptr && scratch_floats > kCounters;
  const size_t partial_floats = counted ? scratch_floats - kCounters : 0;
  const int chunks = counted ? Chunks(N, OC, tiles, partial_floats) : 1;
  auto* arrivals = counted ? reinterpret_cast<unsigned*>(scratch + partial_floats) : nullptr;
  BiasGradientKernel<InT, V>
      <<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks)), dim3(kCols, kRowGroups),
         0, stream>>>(dbias, scratch, arrivals, copy, dout, N, OC, (N + chunks - 1) / chunks);
  return cudaGetLastError();
}

template <typename InT>
cudaError_t LaunchFor(float* dbias, const InT* dout, int N, int OC, float* scratch,
                      size_t scratch_floats, __nv_bfloat16* copy, cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return cudaGetLastError();
  const bool quads = OC % 4 == 0 && QuadAligned(dout) && (copy == nullptr || QuadAligned(copy));
  return quads ? Launch<InT, 4>(dbias, dout, N, OC, scratch, scratch_floats, copy, stream)
               : Launch<InT, 1>(dbias, dout, N, OC, scratch, scratch_floats, copy, stream);
}

}  // namespace

cudaError_t LaunchBiasGradient(float* dbias, const float* dout, int N, int OC, float* scratch,
                               size_t scratch_floats, uint16_t* bf16_copy, cudaStream_t stream) {
  return LaunchFor(dbias, dout, N, OC, scratch, scratch_floats,
                   reinterpret_cast<__nv_bfloat16*>(bf16_copy), stream);
}

cudaError_t LaunchBiasGradientBf16(float* dbias, const uint16_t* dout, int N, int OC,
                                   float* scratch, size_t scratch_floats, cudaStream_t stream) {
  return LaunchFor(dbias, reinterpret_cast<const __nv_bfloat16*>(dout), N, OC, scratch,
                   scratch_floats, static_cast<__nv_bfloat16*>(nullptr), stream);
}

}  // namespace spillway::kernels::cuda
