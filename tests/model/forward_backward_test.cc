// Model::ForwardBackward against ForwardAccumulate then Backward: the same summed loss and the
// same gradients, bitwise, on each backend and matmul precision (GPT-2 writes the loss's gradient
// in the forward's pass over the logits there). The cuda cases run on the GPU machine.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "engine/model/device_scalars.h"
#include "engine/model/gpt2.h"
#include "kernels/backend.h"
#include "tests/model/model_test_util.h"

namespace spillway {
namespace {

using testing_util::RandomTokens;
using testing_util::TinyModel;

constexpr int kBatch = 2;

// What a step leaves: the summed loss of its micro-batches, then every Unit's gradients.
using StepResult = std::vector<double>;

class ForwardBackwardTest
    : public ::testing::TestWithParam<std::tuple<std::string, kernels::MatmulPrecision>> {
 protected:
  void SetUp() override {
    const std::string& backend = std::get<0>(GetParam());
    if (backend == "cuda" && kernels::GpuCount() == 0) {
      GTEST_SKIP() << "no GPU here (the cuda cases run on the GPU machine)";
    }
    auto ops = kernels::CreateOps(backend);
    ASSERT_TRUE(ops.ok()) << ops.status();
    ops_ = std::move(ops).value();
    ops_->SetMatmulPrecision(std::get<1>(GetParam()));
  }

  // Two micro-batches accumulated at loss scale 0.5, fused or as two calls each; targets where
  // `ignored` says are ignored (< 0).
  StepResult Step(bool fused, const std::vector<bool>& ignored) {
    auto model = Gpt2::Create(config_, kBatch, /*activation_checkpointing=*/false, ops_.get());
    EXPECT_TRUE(model.ok()) << model.status();
    EXPECT_TRUE((*model)->InitParams(3).ok());
    auto scalars = DeviceScalars::Create(*ops_, 1, "the test's loss");
    EXPECT_TRUE(scalars.ok()) << scalars.status();
    scalars->Zero(*ops_);
    (*model)->ZeroGrads();
    const size_t N = static_cast<size_t>(kBatch) * config_.seq_len;
    for (int micro = 0; micro < 2; ++micro) {
      const std::vector<int32_t> inputs = RandomTokens(N, config_.vocab_size, 10 + micro);
      std::vector<int32_t> targets = RandomTokens(N, config_.vocab_size, 20 + micro);
      for (size_t i = 0; i < N; ++i) {
        if (ignored[i % ignored.size()]) targets[i] = -1;
      }
      const bool last = micro == 1;
      if (fused) {
        (*model)->ForwardBackward(inputs.data(), targets.data(), scalars->at(0), 0.5f, last);
      } else {
        (*model)->ForwardAccumulate(inputs.data(), targets.data(), scalars->at(0));
        (*model)->Backward(0.5f, last);
      }
    }
    StepResult out(1);
    EXPECT_TRUE(scalars->Read(*ops_, {out.data(), 1}).ok());
    for (const UnitState& unit : (*model)->units()) {
      std::vector<float> grads(unit.numel());
      ops_->CopyToHost(grads.data(), unit.grads.as<float>(), grads.size() * sizeof(float));
      EXPECT_TRUE(ops_->Synchronize().ok());
      out.insert(out.end(), grads.begin(), grads.end());
    }
    return out;
  }

  static bool Bitwise(const StepResult& a, const StepResult& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
  }

  ModelConfig config_ = TinyModel();
  std::unique_ptr<kernels::Ops> ops_;
};

TEST_P(ForwardBackwardTest, EqualsForwardThenBackward) {
  const std::vector<bool> some_ignored = {false, false, true, false, false};
  const StepResult fused = Step(true, some_ignored);
  EXPECT_TRUE(Bitwise(fused, Step(false, some_ignored)));
  EXPECT_GT(fused[0], 0.0);
  bool any_gradient = false;
  for (size_t i = 1; i < fused.size(); ++i) any_gradient |= fused[i] != 0.0;
  EXPECT_TRUE(any_gradient);
}

TEST_P(ForwardBackwardTest, EqualsForwardThenBackwardWithEveryTargetIgnored) {
  const std::vector<bool> all_ignored = {true};
  const StepResult fused = Step(true, all_ignored);
  EXPECT_TRUE(Bitwise(fused, Step(false, all_ignored)));
  EXPECT_EQ(fused[0], 0.0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ForwardBackwardTest,
                         ::testing::Combine(::testing::Values("cpu", "cuda"),
                                            ::testing::Values(kernels::MatmulPrecision::kFp32,
                                                              kernels::MatmulPrecision::kBf16)),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) == kernels::MatmulPrecision::kBf16
                                       ? "_bf16"
                                       : "_fp32");
                         });

}  // namespace
}  // namespace spillway
