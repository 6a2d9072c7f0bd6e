// Helpers for the CUDA op tests: each test runs an op on the CPU backend and on the CUDA
// backend with the same fresh random inputs and compares the outputs.
//
// Without a usable CUDA device the tests skip with a message (GTEST_SKIP), so the suite still
// passes on machines without a GPU; they carry the ctest label `gpu`.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "kernels/ops.h"

namespace spillway::kernels::testing {

// fp32 CUDA vs fp32 CPU, relative L2 error: both round at fp32, in different orders.
inline constexpr double kCudaFp32Tol = 1e-5;

// A device copy of a host vector; Download() brings it back. Test-only: aborts the test on a
// CUDA error.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : size_(host.size()) {
    EXPECT_EQ(cudaMalloc(&data_, std::max<size_t>(1, size_) * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice),
              cudaSuccess);
    // From pageable memory cudaMemcpy may return before the data lands, and the backend's
    // non-blocking stream does not wait for the legacy stream: wait here.
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  explicit DeviceArray(size_t n) : DeviceArray(std::vector<T>(n)) {}
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() { return data_; }
  std::vector<T> Download() const {
    std::vector<T> host(size_);
    EXPECT_EQ(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t size_;
};

// ||got - want|| / ||want|| in double (0 when both are zero); NaN anywhere fails.
double RelError(const std::vector<float>& got, const std::vector<float>& want);

// Fixture: creates the CUDA backend, or skips the test when no device is usable.
class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override;
  Ops& cuda() { return *cuda_; }
  std::unique_ptr<Ops> cuda_;
};

}  // namespace spillway::kernels::testing
