#include "tests/kernels/cuda/cuda_test_util.h"

#include <cmath>

#include "kernels/backend.h"

namespace spillway::kernels::testing {

double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (std::isnan(got[i]) || std::isnan(want[i])) return INFINITY;
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  if (norm == 0) return diff == 0 ? 0 : INFINITY;
  return std::sqrt(diff / norm);
}

void CudaOpsTest::SetUp() {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    GTEST_SKIP() << "no CUDA device (" << cudaGetErrorString(err)
                 << "): CUDA op tests run on the GPU machine";
  }
  absl::StatusOr<std::unique_ptr<Ops>> ops = CreateOps("cuda");
  ASSERT_TRUE(ops.ok()) << ops.status();
  cuda_ = std::move(ops).value();
}

}  // namespace spillway::kernels::testing
