// GPT-2's bf16 weight copies (KeepsWeightCopies, engine/model/model.h): made in each Unit's
// forward, read by the GEMMs of the forward and the backward. A model whose parameters were
// changed between steps must compute exactly what a model created with those parameters does;
// one told that parameters change before the backward (PipeMare) rounds its copies again there.
// AdamW that updates a Unit whole writes its copy too, exactly as the forward would round it.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "engine/model/gpt2.h"
#include "engine/train/optimizer_step.h"
#include "kernels/backend.h"
#include "tests/model/model_test_util.h"

namespace spillway {
namespace {

using testing_util::RandomTokens;
using testing_util::TinyModel;

constexpr int kBatch = 2;

class WeightCopiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ops_ = kernels::CreateOps("cpu").value();
    ops_->SetMatmulPrecision(kernels::MatmulPrecision::kBf16);
  }

  std::unique_ptr<Gpt2> Make(uint64_t seed) {
    auto model = Gpt2::Create(config_, kBatch, false, ops_.get()).value();
    EXPECT_TRUE(model->InitParams(seed).ok());
    return model;
  }
  // Sets every parameter of `to` to those of `from`.
  void CopyParams(Gpt2& from, Gpt2& to) {
    for (int u = 0; u < from.num_units(); ++u) {
      const UnitState& unit = from.unit(u);
      ASSERT_TRUE(to.SetUnitParams(u, {unit.params.as<float>(), unit.numel()}).ok());
    }
  }
  // One micro-batch's loss and the gradients it leaves (zeroed first), all Units concatenated.
  std::vector<float> Step(Gpt2& model, uint64_t seed, bool change_params_to = false,
                          Gpt2* other = nullptr) {
    const size_t N = static_cast<size_t>(kBatch) * config_.seq_len;
    const std::vector<int32_t> inputs = RandomTokens(N, config_.vocab_size, seed);
    const std::vector<int32_t> targets = RandomTokens(N, config_.vocab_size, seed + 1);
    model.ZeroGrads();
    std::vector<float> out = {model.Forward(inputs.data(), targets.data())};
    if (change_params_to) CopyParams(*other, model);
    model.Backward(1.0f);
    for (int u = 0; u < model.num_units(); ++u) {
      const UnitState& unit = model.unit(u);
      out.insert(out.end(), unit.grads.as<float>(), unit.grads.as<float>() + unit.numel());
    }
    return out;
  }
  // One AdamW step (lr 1e-2, clipping at norm 1) over the gradients the model holds.
  void Update(Gpt2& model, int64_t step) {
    OptimizerConfig opt;
    const std::unique_ptr<Communicator> one_rank = Communicator::Single();
    ASSERT_TRUE(OptimizerStep(model, *ops_, *one_rank, *one_rank, opt, 1e-2, 1.0, step).ok());
  }
  static bool Bitwise(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  }

  ModelConfig config_ = TinyModel();
  std::unique_ptr<kernels::Ops> ops_;
};

TEST_F(WeightCopiesTest, KeptAtBf16ForWholeParameters) {
  std::unique_ptr<Gpt2> model = Make(1);
  EXPECT_TRUE(KeepsWeightCopies(config_, kBatch, kernels::MatmulPrecision::kBf16));
  EXPECT_FALSE(KeepsWeightCopies(config_, kBatch, kernels::MatmulPrecision::kFp32));
  size_t elements = 0;
  for (const UnitState& unit : model->units()) elements += WeightCopyElements(unit.layout);
  EXPECT_EQ(model->weight_copy_bytes(), elements * sizeof(uint16_t));
  EXPECT_EQ(WeightCopyElements(model->units().back().layout), 0u);  // ln_f only: no GEMM weight
  ops_->SetMatmulPrecision(kernels::MatmulPrecision::kFp32);
  EXPECT_EQ(Make(1)->weight_copy_bytes(), 0u);
}

TEST_F(WeightCopiesTest, FollowParametersSetBetweenSteps) {
  std::unique_ptr<Gpt2> changed = Make(1), fresh = Make(2);
  Step(*changed, 40);  // its copies now hold seed 1's weights
  CopyParams(*fresh, *changed);
  EXPECT_TRUE(Bitwise(Step(*changed, 50), Step(*fresh, 50)));
}

TEST_F(WeightCopiesTest, RoundedAgainInTheBackwardWhenParametersChangeBeforeIt) {
  std::unique_ptr<Gpt2> reused = Make(1), rounded = Make(1), other = Make(2);
  rounded->set_params_change_before_backward(true);
  // Without a change in between, rounding again changes nothing.
  EXPECT_TRUE(Bitwise(Step(*reused, 60), Step(*rounded, 60)));
  // With one, the backward's GEMMs read the new weights only where the copies are made again.
  const std::vector<float> a = Step(*reused, 70, true, other.get());
  const std::vector<float> b = Step(*rounded, 70, true, other.get());
  EXPECT_EQ(a[0], b[0]);  // the same forward
  EXPECT_FALSE(Bitwise(a, b));
}

TEST_F(WeightCopiesTest, WrittenByAdamWAsTheForwardRoundsThem) {
  std::unique_ptr<Gpt2> by_adamw = Make(1), by_forward = Make(1);
  for (int64_t step = 1; step <= 3; ++step) {
    SCOPED_TRACE(::testing::Message() << "step " << step);
    EXPECT_TRUE(Bitwise(Step(*by_adamw, 80 + step), Step(*by_forward, 80 + step)));
    Update(*by_adamw, step);
    Update(*by_forward, step);
    for (UnitState& unit : by_forward->units()) unit.weight_copy_current = false;
    for (const UnitState& unit : by_adamw->units()) {
      EXPECT_EQ(unit.weight_copy_current, unit.weight_copy != nullptr) << unit.layout.name();
    }
  }
  EXPECT_TRUE(Bitwise(Step(*by_adamw, 90), Step(*by_forward, 90)));
}

TEST_F(WeightCopiesTest, RoundedAgainAfterAWriteThroughFindParam) {
  std::unique_ptr<Gpt2> written = Make(1), fresh = Make(2);
  Step(*written, 100);
  Update(*written, 1);  // its copies are current
  for (int u = 0; u < fresh->num_units(); ++u) {
    for (const TensorSpec& t : fresh->unit(u).layout.tensors()) {
      std::memcpy(written->FindParam(t.name), fresh->unit(u).params.as<float>() + t.offset,
                  t.numel * sizeof(float));
    }
  }
  EXPECT_TRUE(Bitwise(Step(*written, 101), Step(*fresh, 101)));
}

}  // namespace
}  // namespace spillway
