// GPU memory allocation for the kDevice tier, and page-locked host memory for the kPinnedHost
// tier (fast, asynchronous copies to and from the GPU). In a build without CUDA, allocation
// fails with FailedPrecondition ("this build has no CUDA").
#pragma once

#include <cstddef>

#include "absl/status/statusor.h"

namespace spillway {

// `bytes` (> 0) of zeroed memory on the current device.
absl::StatusOr<void*> AllocateDeviceMemory(size_t bytes);
void FreeDeviceMemory(void* p);

// `bytes` (> 0) of zeroed page-locked host memory, 4096-byte aligned (O_DIRECT needs it).
absl::StatusOr<void*> AllocatePinnedHostMemory(size_t bytes);
void FreePinnedHostMemory(void* p);

// Free and total bytes of the current device's memory (cudaMemGetInfo, which creates the
// device's context if there is none yet).
struct DeviceMemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
absl::StatusOr<DeviceMemoryInfo> QueryDeviceMemory();

}  // namespace spillway
