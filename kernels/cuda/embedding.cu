// Token + position embedding, forward and backward; a null wpe (dwpe) means no position
// embedding (Llama).
//
// Forward: a grid-stride loop over the output, in float4 quads when C % 4 == 0 and the pointers
// are 16-byte aligned.
//
// Backward, deterministically:
//  - dwpe[t, c] += sum_b dout[b, t, c]: one thread per (t, c), adding over b in order.
//  - dwte: positions are visited in the order k = t * B + b (that of kernels/cpu/embedding.cc).
//    A stable radix sort (CUB) of the pairs (token at k, k), in the caller's scratch, lists each
//    token's positions in that order, contiguously; the block of sorted index i, where a token's
//    run starts, owns that token's row and adds the run's dout rows into it, kept in registers,
//    one add per position in order. So every row is written by one block and summed in the same
//    order as the CPU backend (bitwise equal to it).
#include <cstddef>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels::cuda {
namespace {

__global__ void EmbeddingForwardKernel(float* out, const int32_t* tokens, const float* wte,
                                       const float* wpe, int B, int T, int C) {
  const size_t n = static_cast<size_t>(B) * T * C;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const size_t bt = i / C;
    const size_t c = i % C;
    const size_t t = bt % T;
    const float e = wte[static_cast<size_t>(tokens[bt]) * C + c];
    out[i] = wpe == nullptr ? e : e + wpe[t * C + c];
  }
}

// C % 4 == 0 and all pointers 16-byte aligned; works on quads.
__global__ void EmbeddingForwardKernel4(float* out, const int32_t* tokens, const float* wte,
                                        const float* wpe, int B, int T, int C) {
  const size_t C4 = static_cast<size_t>(C) / 4;
  const size_t n4 = static_cast<size_t>(B) * T * C4;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const float4* wte4 = reinterpret_cast<const float4*>(wte);
  const float4* wpe4 = reinterpret_cast<const float4*>(wpe);
  float4* out4 = reinterpret_cast<float4*>(out);
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += stride) {
    const size_t bt = i / C4;
    const size_t c4 = i % C4;
    const size_t t = bt % T;
    const float4 e = wte4[static_cast<size_t>(tokens[bt]) * C4 + c4];
    if (wpe4 == nullptr) {
      out4[i] = e;
      continue;
    }
    const float4 p = wpe4[t * C4 + c4];
    out4[i] = make_float4(e.x + p.x, e.y + p.y, e.z + p.z, e.w + p.w);
  }
}

__global__ void EmbeddingBackwardWpeKernel(float* dwpe, const float* dout, int B, int T, int C) {
  const size_t n = static_cast<size_t>(T) * C;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // i = t * C + c; dout[b, t, c] = dout[b * T * C + i].
    float acc = dwpe[i];
    for (int b = 0; b < B; ++b) acc += dout[static_cast<size_t>(b) * n + i];
    dwpe[i] = acc;
  }
}

constexpr int kWteThreads = 256;
constexpr int kWtePerThread = 4;  // channels per thread per pass over the positions
constexpr int kWteMaxBlocks = 1 << 16;

// Position k of the visiting order (t outer, b inner) as a flat b * T + t index.
__device__ __forceinline__ size_t PositionBt(int k, int B, int T) {
  return static_cast<size_t>(k % B) * T + k / B;
}

// keys[k] = the token at visiting position k, positions[k] = k.
__global__ void WtePairsKernel(uint32_t* keys, int32_t* positions, const int32_t* tokens, int B,
                               int T) {
  const int BT = B * T;
  for (int k = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); k < BT;
       k += static_cast<int>(gridDim.x * blockDim.x)) {
    keys[k] = static_cast<uint32_t>(tokens[PositionBt(k, B, T)]);
    positions[k] = k;
  }
}

// Block i (grid-stride) owns the run of equal keys starting at sorted index i, if one starts
// there, and adds its positions' dout rows into that token's row of dwte in order.
__global__ void __launch_bounds__(kWteThreads)
    EmbeddingBackwardWteKernel(float* dwte, const float* dout, const uint32_t* keys,
                               const int32_t* positions, int B, int T, int C) {
  const int BT = B * T;
  for (int i = blockIdx.x; i < BT; i += gridDim.x) {  // block-uniform loop
    const uint32_t tok = keys[i];
    if (i > 0 && keys[i - 1] == tok) continue;
    int end = i + 1;
    while (end < BT && keys[end] == tok) ++end;
    float* row = dwte + static_cast<size_t>(tok) * C;
    for (int c0 = 0; c0 < C; c0 += kWteThreads * kWtePerThread) {
      float acc[kWtePerThread];
#pragma unroll
      for (int r = 0; r < kWtePerThread; ++r) {
        const int c = c0 + r * kWteThreads + static_cast<int>(threadIdx.x);
        acc[r] = c < C ? row[c] : 0.0f;
      }
      int j = i;
      for (; j + 4 <= end; j += 4) {  // four rows' loads in flight, added in order
        const float* d0 = dout + PositionBt(positions[j], B, T) * C;
        const float* d1 = dout + PositionBt(positions[j + 1], B, T) * C;
        const float* d2 = dout + PositionBt(positions[j + 2], B, T) * C;
        const float* d3 = dout + PositionBt(positions[j + 3], B, T) * C;
#pragma unroll
        for (int r = 0; r < kWtePerThread; ++r) {
          const int c = c0 + r * kWteThreads + static_cast<int>(threadIdx.x);
          if (c < C) {
            const float v0 = d0[c], v1 = d1[c], v2 = d2[c], v3 = d3[c];
            acc[r] += v0;
            acc[r] += v1;
            acc[r] += v2;
            acc[r] += v3;
          }
        }
      }
      for (; j < end; ++j) {
        const float* d = dout + PositionBt(positions[j], B, T) * C;
#pragma unroll
        for (int r = 0; r < kWtePerThread; ++r) {
          const int c = c0 + r * kWteThreads + static_cast<int>(threadIdx.x);
          if (c < C) acc[r] += d[c];
        }
      }
#pragma unroll
      for (int r = 0; r < kWtePerThread; ++r) {
        const int c = c0 + r * kWteThreads + static_cast<int>(threadIdx.x);
        if (c < C) row[c] = acc[r];
      }
    }
  }
}

// The scratch's parts for BT positions: keys and positions in and out, then CUB's temporary
// storage, each 256-byte aligned.
struct WteScratch {
  uint32_t *keys_in, *keys_out;
  int32_t *positions_in, *positions_out;
  void* sort_temp;
  size_t sort_temp_bytes;
  size_t bytes;  // in all
};

size_t Align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// w's layout for BT positions at base (null: only its size); the error of CUB's size query.
cudaError_t CarveWte(void* base, int BT, WteScratch& w) {
  w = WteScratch{};
  const size_t part = Align256(static_cast<size_t>(BT) * sizeof(uint32_t));
  if (cudaError_t e = cub::DeviceRadixSort::SortPairs(
          nullptr, w.sort_temp_bytes, static_cast<const uint32_t*>(nullptr),
          static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
          static_cast<int32_t*>(nullptr), BT);
      e != cudaSuccess) {
    return e;
  }
  w.bytes = 4 * part + Align256(w.sort_temp_bytes);
  if (base == nullptr) return cudaSuccess;
  auto* p = static_cast<unsigned char*>(base);
  w.keys_in = reinterpret_cast<uint32_t*>(p);
  w.keys_out = reinterpret_cast<uint32_t*>(p + part);
  w.positions_in = reinterpret_cast<int32_t*>(p + 2 * part);
  w.positions_out = reinterpret_cast<int32_t*>(p + 3 * part);
  w.sort_temp = p + 4 * part;
  return cudaSuccess;
}

}  // namespace

cudaError_t LaunchEmbeddingForward(float* out, const int32_t* tokens, const float* wte,
                                   const float* wpe, int B, int T, int C, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * T * C;
  if (B <= 0 || T <= 0 || C <= 0) return cudaSuccess;
  if (C % 4 == 0 && Aligned16(out) && Aligned16(wte) && Aligned16(wpe)) {
    EmbeddingForwardKernel4<<<GridStrideBlocks(n / 4), kGridStrideThreads, 0, stream>>>(
        out, tokens, wte, wpe, B, T, C);
  } else {
    EmbeddingForwardKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(out, tokens, wte,
                                                                                   wpe, B, T, C);
  }
  return cudaGetLastError();
}

size_t EmbeddingBackwardScratchBytes(int B, int T) {
  WteScratch w;
  if (B <= 0 || T <= 0 || CarveWte(nullptr, B * T, w) != cudaSuccess) return 0;
  return w.bytes;
}

cudaError_t LaunchEmbeddingBackward(float* dwte, float* dwpe, const float* dout,
                                    const int32_t* tokens, int B, int T, int C, void* scratch,
                                    cudaStream_t stream) {
  if (B <= 0 || T <= 0 || C <= 0) return cudaSuccess;
  if (reinterpret_cast<uintptr_t>(scratch) % 256 != 0) return cudaErrorMisalignedAddress;
  const int BT = B * T;
  WteScratch w;
  if (cudaError_t e = CarveWte(scratch, BT, w); e != cudaSuccess) return e;
  if (scratch == nullptr) return cudaErrorInvalidValue;  // checked before anything is added
  if (dwpe != nullptr) {
    EmbeddingBackwardWpeKernel<<<GridStrideBlocks(static_cast<size_t>(T) * C), kGridStrideThreads,
                                 0, stream>>>(dwpe, dout, B, T, C);
  }
  WtePairsKernel<<<GridStrideBlocks(static_cast<size_t>(BT)), kGridStrideThreads, 0, stream>>>(
      w.keys_in, w.positions_in, tokens, B, T);
  if (cudaError_t e =
          cub::DeviceRadixSort::SortPairs(w.sort_temp, w.sort_temp_bytes, w.keys_in, w.keys_out,
                                          w.positions_in, w.positions_out, BT, 0, 32, stream);
      e != cudaSuccess) {
    return e;
  }
  const int blocks = BT < kWteMaxBlocks ? BT : kWteMaxBlocks;
  EmbeddingBackwardWteKernel<<<blocks, kWteThreads, 0, stream>>>(dwte, dout, w.keys_out,
                                                                 w.positions_out, B, T, C);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
