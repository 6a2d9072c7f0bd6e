// Token + position embedding, forward and backward; a null wpe (dwpe) means no position
// embedding (Llama).
//
// Forward: a grid-stride loop over the output, in float4 quads when C % 4 == 0 and the pointers
// are 16-byte aligned.
//
// Backward, deterministically and without atomics or scratch:
//  - dwpe[t, c] += sum_b dout[b, t, c]: one thread per (t, c), adding over b in order.
//  - dwte: positions are visited in the order k = t * B + b (that of kernels/cpu/embedding.cc).
//    The block for position k first checks whether its token occurs at an earlier position; if
//    not, it owns that token's row: it scans the positions [k, B*T) in chunks, lists the matches
//    of each chunk in order in shared memory, and adds their dout rows into the row, kept in
//    registers, one add per position in order. So every row is written by one block and summed
//    in the same order as the CPU backend (bitwise equal to it).
#include <cstddef>
#include <cstdint>

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
constexpr int kWteWarps = kWteThreads / 32;
constexpr int kWtePerThread = 4;  // channels per thread per pass over the positions
constexpr int kWteMaxBlocks = 1 << 16;

// Position k of the visiting order (t outer, b inner) as a flat b * T + t index.
__device__ __forceinline__ size_t PositionBt(int k, int B, int T) {
  return static_cast<size_t>(k % B) * T + k / B;
}

__global__ void __launch_bounds__(kWteThreads)
    EmbeddingBackwardWteKernel(float* dwte, const float* dout, const int32_t* tokens, int B, int T,
                               int C) {
  __shared__ int s_count[kWteWarps];
  __shared__ int s_pos[kWteThreads];
  const int BT = B * T;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  for (int k = blockIdx.x; k < BT; k += gridDim.x) {  // block-uniform loop
    const int tok = tokens[PositionBt(k, B, T)];
    // Does the token occur at an earlier position? Then that position's block owns the row.
    bool earlier = false;
    for (int j0 = 0; j0 < k; j0 += kWteThreads) {
      const int j = j0 + static_cast<int>(threadIdx.x);
      const bool found = j < k && tokens[PositionBt(j, B, T)] == tok;
      if (__syncthreads_or(found)) {
        earlier = true;
        break;
      }
    }
    if (earlier) continue;

    float* row = dwte + static_cast<size_t>(tok) * C;
    for (int c0 = 0; c0 < C; c0 += kWteThreads * kWtePerThread) {
      float acc[kWtePerThread];
#pragma unroll
      for (int r = 0; r < kWtePerThread; ++r) {
        const int c = c0 + r * kWteThreads + static_cast<int>(threadIdx.x);
        acc[r] = c < C ? row[c] : 0.0f;
      }
      for (int j0 = k; j0 < BT; j0 += kWteThreads) {
        // List this chunk's positions holding the token, in order, in s_pos[0, total).
        const int j = j0 + static_cast<int>(threadIdx.x);
        const bool match = j < BT && tokens[PositionBt(j, B, T)] == tok;
        const unsigned mask = __ballot_sync(0xffffffffu, match);
        if (lane == 0) s_count[warp] = __popc(mask);
        __syncthreads();
        int offset = 0, total = 0;
#pragma unroll
        for (int w = 0; w < kWteWarps; ++w) {
          if (w < warp) offset += s_count[w];
          total += s_count[w];
        }
        if (match) s_pos[offset + __popc(mask & ((1u << lane) - 1u))] = j;
        __syncthreads();
        int i = 0;
        for (; i + 4 <= total; i += 4) {  // four rows' loads in flight, added in order
          const float* d0 = dout + PositionBt(s_pos[i], B, T) * C;
          const float* d1 = dout + PositionBt(s_pos[i + 1], B, T) * C;
          const float* d2 = dout + PositionBt(s_pos[i + 2], B, T) * C;
          const float* d3 = dout + PositionBt(s_pos[i + 3], B, T) * C;
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
        for (; i < total; ++i) {
          const float* d = dout + PositionBt(s_pos[i], B, T) * C;
#pragma unroll
          for (int r = 0; r < kWtePerThread; ++r) {
            const int c = c0 + r * kWteThreads + static_cast<int>(threadIdx.x);
            if (c < C) acc[r] += d[c];
          }
        }
        __syncthreads();  // s_count and s_pos are rewritten by the next chunk
      }
#pragma unroll
      for (int r = 0; r < kWtePerThread; ++r) {
        const int c = c0 + r * kWteThreads + static_cast<int>(threadIdx.x);
        if (c < C) row[c] = acc[r];
      }
    }
  }
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

cudaError_t LaunchEmbeddingBackward(float* dwte, float* dwpe, const float* dout,
                                    const int32_t* tokens, int B, int T, int C,
                                    cudaStream_t stream) {
  if (B <= 0 || T <= 0 || C <= 0) return cudaSuccess;
  if (dwpe != nullptr) {
    EmbeddingBackwardWpeKernel<<<GridStrideBlocks(static_cast<size_t>(T) * C), kGridStrideThreads,
                                 0, stream>>>(dwpe, dout, B, T, C);
  }
  const int BT = B * T;
  const int blocks = BT < kWteMaxBlocks ? BT : kWteMaxBlocks;
  EmbeddingBackwardWteKernel<<<blocks, kWteThreads, 0, stream>>>(dwte, dout, tokens, B, T, C);
  return cudaGetLastError();
}

}  // namespace spillway::kernels::cuda
