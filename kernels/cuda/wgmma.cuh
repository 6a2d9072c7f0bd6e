// Hopper warpgroup products (wgmma.mma_async, sm_90a): a warpgroup of 4 warps multiplies a
// 64-row A, held in registers (warp w holds rows [16 w, 16 w + 16) as an mma.m16n8k16 A
// fragment), by an N-column B read from shared memory through a matrix descriptor, into fp32
// accumulators laid out per warp as mma.m16n8k16 C fragments (N / 8 column tiles of 4 floats).
//
// B tiles use the 128-byte swizzle: rows of 64 16-bit elements (128 bytes), 16-byte chunk c of
// row r stored at chunk c ^ (r % 8), the tile's base 1024-byte aligned (SwizzledChunk). Such a
// tile is "K-major" for a B whose rows are its N index (B[k][n] = tile[n][k]) and "MN-major"
// (transposed) for a B whose rows are its K index (B[k][n] = tile[k][n]).
//
// Issue order: FenceSharedWrites() and a barrier after writing a B tile; Fence() before products
// that read or accumulate into registers other code wrote, then the products, Commit(), and
// Wait<0>() before their accumulators or A registers are used or reused.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace spillway::kernels::cuda::wgmma {

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SPW_WGMMA_UNAVAILABLE 1  // compiled for a target without wgmma: the products trap
#endif

// Where 16-byte chunk `chunk` of row `row` sits in a 128-byte-swizzled tile, in 16-bit elements.
__device__ __forceinline__ int SwizzledChunk(int row, int chunk) {
  return row * 64 + ((chunk ^ (row & 7)) << 3);
}

// The descriptor of a 128-byte-swizzled tile starting at `tile` (row 0 of the rows the product
// reads, at a multiple of 8 rows from a 1024-byte-aligned base, plus 32 bytes per 16 K columns
// for a K-major B). Groups of 8 rows are 1024 bytes apart.
__device__ __forceinline__ uint64_t Descriptor(const void* tile) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(tile));
  constexpr uint64_t kLeadingBytes = 16, kStrideBytes = 1024, kSwizzle128 = 1;
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | ((kLeadingBytes >> 4) << 16) |
         ((kStrideBytes >> 4) << 32) | (kSwizzle128 << 62);
}

// Makes the thread's completed writes to shared memory (stores, landed cp.async copies) visible
// to the products' reads; a barrier then publishes them to the warpgroup.
__device__ __forceinline__ void FenceSharedWrites() {
#ifndef SPW_WGMMA_UNAVAILABLE
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void Fence() {
#ifndef SPW_WGMMA_UNAVAILABLE
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void Commit() {
#ifndef SPW_WGMMA_UNAVAILABLE
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int kPending>
__device__ __forceinline__ void Wait() {
#ifndef SPW_WGMMA_UNAVAILABLE
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}

// c (64 x 32) = a (64 x 16) b (16 x 32) [+ c where accumulate]; kTransB: b's tile is MN-major.
#define SPW_WGMMA_N32(TYPE)                                                                       \
  asm volatile(                                                                                   \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"                                                \
      "wgmma.mma_async.sync.aligned.m64n32k16.f32." TYPE "." TYPE                                 \
      " {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, {%16,%17,%18,%19}, %20, p, 1, "  \
      "1, %22;\n}\n"                                                                              \
      : "+f"(c[0][0]), "+f"(c[0][1]), "+f"(c[0][2]), "+f"(c[0][3]), "+f"(c[1][0]), "+f"(c[1][1]), \
        "+f"(c[1][2]), "+f"(c[1][3]), "+f"(c[2][0]), "+f"(c[2][1]), "+f"(c[2][2]), "+f"(c[2][3]), \
        "+f"(c[3][0]), "+f"(c[3][1]), "+f"(c[3][2]), "+f"(c[3][3])                                \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(static_cast<int>(accumulate)),    \
        "n"(kTransB))

template <typename T16, int kTransB>
__device__ __forceinline__ void Mma64x32(float (&c)[4][4], const uint32_t (&a)[4], uint64_t b,
                                         bool accumulate) {
#ifdef SPW_WGMMA_UNAVAILABLE
  __trap();
#else
  if constexpr (std::is_same_v<T16, __nv_bfloat16>) {
    SPW_WGMMA_N32("bf16");
  } else {
    SPW_WGMMA_N32("f16");
  }
#endif
}
#undef SPW_WGMMA_N32

// c (64 x 64) = a (64 x 16) b (16 x 64) [+ c where accumulate]; kTransB: b's tile is MN-major.
#define SPW_WGMMA_N64(TYPE)                                                                       \
  asm volatile(                                                                                   \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE                                 \
      " {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,"  \
      "%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"              \
      : "+f"(c[0][0]), "+f"(c[0][1]), "+f"(c[0][2]), "+f"(c[0][3]), "+f"(c[1][0]), "+f"(c[1][1]), \
        "+f"(c[1][2]), "+f"(c[1][3]), "+f"(c[2][0]), "+f"(c[2][1]), "+f"(c[2][2]), "+f"(c[2][3]), \
        "+f"(c[3][0]), "+f"(c[3][1]), "+f"(c[3][2]), "+f"(c[3][3]), "+f"(c[4][0]), "+f"(c[4][1]), \
        "+f"(c[4][2]), "+f"(c[4][3]), "+f"(c[5][0]), "+f"(c[5][1]), "+f"(c[5][2]), "+f"(c[5][3]), \
        "+f"(c[6][0]), "+f"(c[6][1]), "+f"(c[6][2]), "+f"(c[6][3]), "+f"(c[7][0]), "+f"(c[7][1]), \
        "+f"(c[7][2]), "+f"(c[7][3])                                                              \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(static_cast<int>(accumulate)),    \
        "n"(kTransB))

template <typename T16, int kTransB>
__device__ __forceinline__ void Mma64x64(float (&c)[8][4], const uint32_t (&a)[4], uint64_t b,
                                         bool accumulate) {
#ifdef SPW_WGMMA_UNAVAILABLE
  __trap();
#else
  if constexpr (std::is_same_v<T16, __nv_bfloat16>) {
    SPW_WGMMA_N64("bf16");
  } else {
    SPW_WGMMA_N64("f16");
  }
#endif
}
#undef SPW_WGMMA_N64

}  // namespace spillway::kernels::cuda::wgmma
