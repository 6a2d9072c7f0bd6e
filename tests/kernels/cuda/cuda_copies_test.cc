// The CUDA backend's asynchronous copies (Ops::*Async, UploadAsync): ordered copies wait for the
// compute issued before them, uploads do not, and tickets order compute and host waits across
// both streams. The compute stream is held still by a host function that waits for the test,
// so what may and may not have landed is certain, not timed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/test_util.h"

namespace spillway::kernels::testing {
namespace {

// Blocks the compute stream at the point of the call until Release().
class ComputeGate {
 public:
  explicit ComputeGate(Ops& ops) {
    auto stream = static_cast<cudaStream_t>(ops.native_stream());
    EXPECT_EQ(cudaLaunchHostFunc(stream, &ComputeGate::Wait, &open_), cudaSuccess);
  }
  ~ComputeGate() { Release(); }
  void Release() { open_.store(true); }

 private:
  static void Wait(void* open) {
    while (!static_cast<std::atomic<bool>*>(open)->load()) std::this_thread::yield();
  }
  std::atomic<bool> open_{false};
};

// Polls CopiesLanded for up to ten seconds.
bool LandsSoon(Ops& ops, int64_t ticket) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ops.CopiesLanded(ticket)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class PinnedFloats {
 public:
  explicit PinnedFloats(const std::vector<float>& values) : n_(values.size()) {
    EXPECT_EQ(cudaMallocHost(&data_, n_ * sizeof(float)), cudaSuccess);
    std::copy(values.begin(), values.end(), data_);
  }
  ~PinnedFloats() { cudaFreeHost(data_); }
  float* get() { return data_; }
  std::vector<float> values() const { return std::vector<float>(data_, data_ + n_); }

 private:
  size_t n_;
  float* data_ = nullptr;
};

TEST_F(CudaOpsTest, UploadsDoNotWaitForComputeAndOrderedCopiesDo) {
  constexpr size_t n = (size_t{1} << 20) + 3;
  const std::vector<float> values = RandomFloats(n, 7);
  PinnedFloats source(values);
  PinnedFloats down(std::vector<float>(n, 0.0f));
  DeviceArray<float> up(n);
  ComputeGate gate(cuda());
  const int64_t upload = cuda().UploadAsync(up.get(), source.get(), n * sizeof(float));
  EXPECT_TRUE(LandsSoon(cuda(), upload)) << "the upload waited for the held compute stream";
  const int64_t ordered = cuda().CopyToHostAsync(down.get(), up.get(), n * sizeof(float));
  EXPECT_GT(ordered, upload);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(cuda().CopiesLanded(ordered)) << "the ordered copy ran before the compute";
  gate.Release();
  ASSERT_TRUE(cuda().WaitCopies(ordered).ok());
  EXPECT_TRUE(cuda().CopiesLanded(ordered));
  EXPECT_TRUE(BitwiseEqual(down.values(), values));
}

TEST_F(CudaOpsTest, ComputeAfterAnUploadFromAnotherThreadSeesIt) {
  constexpr size_t n = (size_t{1} << 20) + 3;
  const std::vector<float> values = RandomFloats(n, 8);
  PinnedFloats source(values);
  DeviceArray<float> up(n);
  DeviceArray<float> zeros(std::vector<float>(n, 0.0f));
  DeviceArray<float> sum(n);
  int64_t ticket = 0;
  std::thread worker(
      [&] { ticket = cuda().UploadAsync(up.get(), source.get(), n * sizeof(float)); });
  worker.join();
  cuda().ComputeAfterCopies(ticket);
  cuda().Add(sum.get(), up.get(), zeros.get(), n);
  ASSERT_TRUE(cuda().Synchronize().ok());
  EXPECT_TRUE(BitwiseEqual(sum.Download(), values));
}

}  // namespace
}  // namespace spillway::kernels::testing
