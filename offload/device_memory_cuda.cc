#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
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

// Page-aligned memory pinned with cudaHostRegister: cudaHostAlloc may hand out small blocks at
// lower alignments, which O_DIRECT transfers (the NVMe tier) refuse.
absl::StatusOr<void*> AllocatePinnedHostMemory(size_t bytes) {
  constexpr size_t kPage = 4096;
  const size_t rounded = (bytes + kPage - 1) / kPage * kPage;
  void* p = nullptr;
  if (posix_memalign(&p, kPage, rounded) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("posix_memalign of ", rounded, " bytes"));
  }
  std::memset(p, 0, rounded);
  if (absl::Status pinned =
          CudaStatus(cudaHostRegister(p, rounded, cudaHostRegisterDefault), "cudaHostRegister");
      !pinned.ok()) {
    std::free(p);
    return pinned;
  }
  return p;
}

void FreePinnedHostMemory(void* p) {
  cudaHostUnregister(p);
  std::free(p);
}

absl::StatusOr<DeviceMemoryInfo> QueryDeviceMemory() {
  DeviceMemoryInfo info;
  SPW_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

}  // namespace spillway
