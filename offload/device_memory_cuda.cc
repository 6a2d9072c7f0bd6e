#include <cuda_runtime.h>

#include <cstring>

#include "core/cuda_status.h"
#include "offload/device_memory.h"

namespace spillway {

absl::StatusOr<void*> AllocateDeviceMemory(size_t bytes) {
  void* p = nullptr;
  SPW_CUDA_CHECK(cudaMalloc(&p, bytes));
  absl::Status zeroed = CudaStatus(cudaMemset(p, 0, bytes), "cudaMemset");
  if (!zeroed.ok()) {
    cudaFree(p);
    return zeroed;
  }
  return p;
}

void FreeDeviceMemory(void* p) { cudaFree(p); }

absl::StatusOr<void*> AllocatePinnedHostMemory(size_t bytes) {
  void* p = nullptr;
  SPW_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
  std::memset(p, 0, bytes);
  return p;
}

void FreePinnedHostMemory(void* p) { cudaFreeHost(p); }

absl::StatusOr<DeviceMemoryInfo> QueryDeviceMemory() {
  DeviceMemoryInfo info;
  SPW_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

}  // namespace spillway
