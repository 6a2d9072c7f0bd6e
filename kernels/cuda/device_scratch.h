// A device buffer that grows to the largest request and is freed with its owner: the scratch of
// the CUDA ops whose size is known only when they are issued (rare regrowth: shapes are fixed for
// a run). Growing first waits for the stream the caller issues on, whose enqueued work may still
// use the old buffer.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "absl/status/statusor.h"

namespace spillway::kernels::cuda {

class DeviceScratch {
 public:
  DeviceScratch() = default;
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  // At least `count` values of T, reallocated (after waiting for `stream`) when smaller. After a
  // failure the buffer is empty.
  template <typename T>
  absl::StatusOr<T*> Get(size_t count, cudaStream_t stream) {
    absl::StatusOr<void*> data = GetBytes(count * sizeof(T), stream);
    if (!data.ok()) return data.status();
    return static_cast<T*>(*data);
  }

 private:
  absl::StatusOr<void*> GetBytes(size_t bytes, cudaStream_t stream);

  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace spillway::kernels::cuda
