// Launch geometry shared by the elementwise-style kernels: grid-stride loops of kThreads-thread
// blocks, at most kMaxBlocks of them, with float4 accesses when every pointer allows.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace spillway::kernels::cuda {

inline constexpr int kGridStrideThreads = 256;
inline constexpr size_t kGridStrideMaxBlocks = 8192;

// Blocks for `work` items, one per thread: at least 1, at most kGridStrideMaxBlocks.
inline size_t GridStrideBlocks(size_t work) {
  const size_t blocks = (work + kGridStrideThreads - 1) / kGridStrideThreads;
  return blocks < kGridStrideMaxBlocks ? (blocks > 0 ? blocks : 1) : kGridStrideMaxBlocks;
}

inline bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
// Whether p allows quads of T (16 bytes of float, 8 of bf16).
template <typename T>
bool QuadAligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

// An attribute of the current device, queried once per process (one GPU a process); 0 where the
// query fails (its error cleared).
template <cudaDeviceAttr kAttribute>
int CurrentDeviceAttribute() {
  static const int value = [] {
    int device = 0, v = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&v, kAttribute, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return v;
  }();
  return value;
}

// The current device's SM count; 0 where unknown: kernels sized by it then take their smallest
// grid.
inline int MultiprocessorCount() {
  return CurrentDeviceAttribute<cudaDevAttrMultiProcessorCount>();
}

}  // namespace spillway::kernels::cuda
