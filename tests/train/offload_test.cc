// Optimizer offload to the CPU (zero_optimization.offload_optimizer.device = "cpu") never
// changes the math: losses and parameters are bitwise equal to training with the optimizer in
// the backend, on the CPU backend (in CI) and on the CUDA backend (with a GPU; pinned memory),
// and an offloaded run resumes bit for bit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/backend.h"
#include "tests/train/train_test_util.h"

namespace spillway {
namespace {

using testing_util::FreshDir;
using testing_util::MakeTrainer;
using testing_util::SmallConfig;

std::string Offloaded(std::string json) {
  return json.insert(json.find('{') + 1,
                     R"("zero_optimization": {"offload_optimizer": {"device": "cpu"}},)");
}

class OffloadTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && kernels::GpuCount() == 0) {
      GTEST_SKIP() << "no GPU here (the CUDA case runs on the GPU machine)";
    }
  }
  std::string Config(int64_t steps, const std::string& name) {
    return SmallConfig(steps, FreshDir(name + "_" + GetParam()), 0, GetParam());
  }
};

TEST_P(OffloadTest, OffloadedOptimizerEqualsInBackendOptimizerBitwise) {
  auto in_backend = MakeTrainer(Config(8, "optimizer_in_backend"));
  auto offloaded = MakeTrainer(Offloaded(Config(8, "optimizer_offloaded")));
  ASSERT_TRUE(in_backend->Train().ok());
  absl::Status trained = offloaded->Train();
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_EQ(in_backend->step_losses(), offloaded->step_losses());
  for (int u = 0; u < in_backend->model().num_units(); ++u) {
    EXPECT_EQ(in_backend->StoredParams(u).value(), offloaded->StoredParams(u).value())
        << in_backend->model().unit(u).layout.name();
    const UnitState& unit = offloaded->model().unit(u);
    EXPECT_TRUE(unit.optimizer_offloaded());
    EXPECT_TRUE(unit.exp_avg.on_host());
    EXPECT_EQ(unit.exp_avg.tier(), GetParam() == "cuda" ? Tier::kPinnedHost : Tier::kHost);
  }
}

TEST_P(OffloadTest, OffloadedRunResumesBitwise) {
  const std::string dir_a = FreshDir("offload_full_" + GetParam());
  const std::string dir_b = FreshDir("offload_split_" + GetParam());
  auto full = MakeTrainer(Offloaded(SmallConfig(8, dir_a, 0, GetParam())));
  ASSERT_TRUE(full->Train().ok());
  ASSERT_TRUE(MakeTrainer(Offloaded(SmallConfig(5, dir_b, 0, GetParam())))->Train().ok());
  auto resumed = MakeTrainer(Offloaded(SmallConfig(8, dir_b, 0, GetParam())));
  absl::Status status = resumed->Resume(dir_b + "/ckpt");
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(resumed->Train().ok());
  ASSERT_EQ(resumed->step_losses().size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(full->step_losses()[5 + i], resumed->step_losses()[i]) << "step " << 6 + i;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, OffloadTest, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace spillway
