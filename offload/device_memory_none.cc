#include "offload/device_memory.h"

namespace spillway {

absl::StatusOr<void*> AllocateDeviceMemory(size_t) {
  return absl::FailedPreconditionError(
      "GPU memory was requested but this build has no CUDA (configure with nvcc available)");
}

void FreeDeviceMemory(void*) {}

absl::StatusOr<void*> AllocatePinnedHostMemory(size_t) {
  return absl::FailedPreconditionError(
      "pinned CPU memory was requested but this build has no CUDA (configure with nvcc "
      "available)");
}

void FreePinnedHostMemory(void*) {}

absl::StatusOr<DeviceMemoryInfo> QueryDeviceMemory() {
  return absl::FailedPreconditionError("this build has no CUDA, so no GPU memory to query");
}

}  // namespace spillway
