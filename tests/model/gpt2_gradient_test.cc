// Whole-model gradient check: the backward pass against finite differences of the forward.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/model/gpt2.h"
#include "kernels/backend.h"
#include "tests/model/model_test_util.h"

namespace spillway {
namespace {

using testing_util::RandomTokens;
using testing_util::TinyModel;

// For each tensor t, the directional derivative of the loss along a unit direction d inside t
// is (L(w + eps d) - L(w - eps d)) / (2 eps) by central differences and <g_t, d> from the
// backward. Directions: g_t / |g_t| and two random ones. fp32 losses make the difference noisy
// at about 1e-7 * |L| / eps, hence the absolute term of the tolerance.
constexpr float kEps = 1e-2f;
constexpr double kRelTol = 2e-2;
constexpr double kAbsTol = 2e-4;

TEST(Gpt2GradientTest, BackwardMatchesFiniteDifferences) {
  const ModelConfig config = TinyModel();
  const int B = 2;
  auto ops = kernels::CreateOps("cpu").value();
  auto model = Gpt2::Create(config, B, /*activation_checkpointing=*/false, ops.get()).value();
  ASSERT_TRUE(model->InitParams(7).ok());
  const size_t N = static_cast<size_t>(B) * config.seq_len;
  std::vector<int32_t> inputs = RandomTokens(N, config.vocab_size, 1);
  std::vector<int32_t> targets = RandomTokens(N, config.vocab_size, 2);
  targets[3] = -1;  // an ignored position

  model->ZeroGrads();
  model->Forward(inputs.data(), targets.data());
  model->Backward(1.0f);

  Rng rng(99);
  int checked = 0;
  for (int u = 0; u < model->num_units(); ++u) {
    UnitState& unit = model->unit(u);
    for (const TensorSpec& t : unit.layout.tensors()) {
      // wte's padding rows have no effect on the loss: restrict directions to real rows.
      const size_t n = t.name == "wte" ? size_t(config.vocab_size) * config.d_model : t.numel;
      float* w = unit.param(t);
      const float* g = unit.grad(t);
      double gnorm = 0;
      for (size_t i = 0; i < n; ++i) gnorm += double(g[i]) * g[i];
      gnorm = std::sqrt(gnorm);
      for (int dir = 0; dir < 3; ++dir) {
        std::vector<double> d(n);
        double dnorm = 0;
        for (size_t i = 0; i < n; ++i) {
          d[i] = dir == 0 ? g[i] : rng.Normal();
          dnorm += d[i] * d[i];
        }
        dnorm = std::sqrt(dnorm);
        if (dnorm == 0) continue;
        double analytic = 0;
        for (size_t i = 0; i < n; ++i) analytic += g[i] * d[i] / dnorm;

        std::vector<float> saved(w, w + n);
        for (size_t i = 0; i < n; ++i) w[i] = saved[i] + float(kEps * d[i] / dnorm);
        const double plus = model->Forward(inputs.data(), targets.data());
        for (size_t i = 0; i < n; ++i) w[i] = saved[i] - float(kEps * d[i] / dnorm);
        const double minus = model->Forward(inputs.data(), targets.data());
        std::copy(saved.begin(), saved.end(), w);
        const double numeric = (plus - minus) / (2.0 * kEps);

        EXPECT_NEAR(numeric, analytic, kRelTol * std::abs(analytic) + kAbsTol)
            << t.name << " direction " << dir << " (|g| = " << gnorm << ")";
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 3 * 20);
}

// The padding rows of wte never receive gradient, so they stay zero through training.
TEST(Gpt2GradientTest, PaddingRowsGetNoGradient) {
  const ModelConfig config = TinyModel();
  auto ops = kernels::CreateOps("cpu").value();
  auto model = Gpt2::Create(config, 2, false, ops.get()).value();
  ASSERT_TRUE(model->InitParams(3).ok());
  const size_t N = 2 * config.seq_len;
  std::vector<int32_t> inputs = RandomTokens(N, config.vocab_size, 4);
  std::vector<int32_t> targets = RandomTokens(N, config.vocab_size, 5);
  model->ZeroGrads();
  model->Forward(inputs.data(), targets.data());
  model->Backward(1.0f);
  const float* dwte = model->FindGrad("wte");
  const float* wte = model->FindParam("wte");
  for (int row = config.vocab_size; row < model->padded_vocab(); ++row) {
    for (int c = 0; c < config.d_model; ++c) {
      ASSERT_EQ(dwte[row * config.d_model + c], 0.0f) << "row " << row;
      ASSERT_EQ(wte[row * config.d_model + c], 0.0f) << "row " << row;
    }
  }
}

}  // namespace
}  // namespace spillway
