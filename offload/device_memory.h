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

// `bytes` (> 0) of zeroed page-locked host memory.
absl::StatusOr<void*> AllocatePinnedHostMemory(size_t bytes);
void FreePinnedHostMemory(void* p);

}  // namespace spillway
