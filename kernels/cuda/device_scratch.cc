#include "kernels/cuda/device_scratch.h"

#include "core/cuda_status.h"
#include "core/status.h"

namespace spillway::kernels::cuda {

DeviceScratch::~DeviceScratch() { cudaFree(data_); }

absl::StatusOr<void*> DeviceScratch::GetBytes(size_t bytes, cudaStream_t stream) {
  if (bytes <= bytes_) return data_;
  SPW_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaFree(data_);
  data_ = nullptr;
  bytes_ = 0;
  SPW_CUDA_CHECK(cudaMalloc(&data_, bytes));
  bytes_ = bytes;
  return data_;
}

}  // namespace spillway::kernels::cuda
