// GPU memory allocation for the kDevice tier. In a build without CUDA, allocation fails with
// FailedPrecondition ("this build has no CUDA").
#pragma once

#include <cstddef>

#include "absl/status/statusor.h"

namespace spillway {

// `bytes` (> 0) of zeroed memory on the current device.
absl::StatusOr<void*> AllocateDeviceMemory(size_t bytes);
void FreeDeviceMemory(void* p);

}  // namespace spillway
