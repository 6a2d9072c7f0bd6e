// PTX wrappers the kernels share: cp.async copies global -> shared (sm_80+) and the special
// function unit's 2^x.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace spillway::kernels::cuda {

// 16 bytes from src to dst (shared memory), or zeros where `bytes` is 0; lands after WaitCopies.
__device__ __forceinline__ void CopyAsync16(void* dst, const void* src, int bytes = 16) {
  const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(bytes));
}
// Closes the thread's group of copies issued since the last commit (possibly none).
__device__ __forceinline__ void CommitCopies() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most `kPending` of the thread's latest copy groups are still in flight. A thread
// sees its own copies then (the "memory" clobber keeps the compiler from reading shared memory
// before it); other threads' need a barrier after.
template <int kPending>
__device__ __forceinline__ void WaitCopies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// 2^x on the special function unit; results below 2^-126 flush to zero (a probability that small
// changes no sum it joins: a row's probabilities sum to 1).
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace spillway::kernels::cuda
