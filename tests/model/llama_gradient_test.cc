// Whole-model gradient check of Llama: the backward pass against finite differences of the
// forward, with grouped-query attention and with plain multi-head attention; plus the padding
// rows and the config errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/model/llama.h"
#include "kernels/backend.h"
#include "tests/model/llama_test_util.h"
#include "tests/model/model_test_util.h"

namespace spillway {
namespace {

using testing_util::RandomTokens;
using testing_util::TinyLlama;

// As gpt2_gradient_test: per tensor, directional derivatives along g/|g| and two random unit
// directions, by central differences of the fp32 loss, against <g, d> from the backward.
constexpr float kEps = 1e-2f;
constexpr double kRelTol = 2e-2;
constexpr double kAbsTol = 2e-4;

void ExpectGradientsMatchFiniteDifferences(const ModelConfig& config) {
  const int B = 2;
  auto ops = kernels::CreateOps("cpu").value();
  auto model = Llama::Create(config, B, /*activation_checkpointing=*/false, ops.get()).value();
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
      // Padding rows have no effect on the loss: restrict directions to real rows.
      const bool vocab_rows = t.name == "embed_tokens.weight" || t.name == "lm_head.weight";
      const size_t n = vocab_rows ? size_t(config.vocab_size) * config.d_model : t.numel;
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
  // embed (1) + 9 per layer + head (2) tensors, 3 directions each.
  EXPECT_EQ(checked, 3 * (1 + 9 * config.n_layer + 2));
}

TEST(LlamaGradientTest, GroupedQueryAttentionMatchesFiniteDifferences) {
  ExpectGradientsMatchFiniteDifferences(TinyLlama());
}

TEST(LlamaGradientTest, MultiHeadAttentionMatchesFiniteDifferences) {
  ModelConfig config = TinyLlama();
  config.n_kv_head = 0;   // = n_head
  config.ffn_hidden = 0;  // = 4 d_model
  ExpectGradientsMatchFiniteDifferences(config);
}

TEST(LlamaGradientTest, MultiQueryAttentionMatchesFiniteDifferences) {
  ModelConfig config = TinyLlama();
  config.n_kv_head = 1;
  config.n_layer = 1;
  ExpectGradientsMatchFiniteDifferences(config);
}

// The padding rows of embed_tokens and lm_head never receive gradient, so they stay zero.
TEST(LlamaGradientTest, PaddingRowsGetNoGradient) {
  const ModelConfig config = TinyLlama();
  auto ops = kernels::CreateOps("cpu").value();
  auto model = Llama::Create(config, 2, false, ops.get()).value();
  ASSERT_TRUE(model->InitParams(3).ok());
  const size_t N = 2 * config.seq_len;
  std::vector<int32_t> inputs = RandomTokens(N, config.vocab_size, 4);
  std::vector<int32_t> targets = RandomTokens(N, config.vocab_size, 5);
  model->ZeroGrads();
  model->Forward(inputs.data(), targets.data());
  model->Backward(1.0f);
  for (const char* name : {"embed_tokens.weight", "lm_head.weight"}) {
    const float* grad = model->FindGrad(name);
    const float* param = model->FindParam(name);
    ASSERT_NE(grad, nullptr) << name;
    for (int row = config.vocab_size; row < model->padded_vocab(); ++row) {
      for (int c = 0; c < config.d_model; ++c) {
        ASSERT_EQ(grad[row * config.d_model + c], 0.0f) << name << " row " << row;
        ASSERT_EQ(param[row * config.d_model + c], 0.0f) << name << " row " << row;
      }
    }
  }
}

TEST(LlamaGradientTest, UnitsAndNamesAreHuggingFaces) {
  const ModelConfig config = TinyLlama();
  auto ops = kernels::CreateOps("cpu").value();
  auto model = Llama::Create(config, 1, false, ops.get()).value();
  ASSERT_EQ(model->num_units(), config.n_layer + 2);
  EXPECT_EQ(model->unit(0).layout.name(), "embed");
  EXPECT_EQ(model->unit(1).layout.name(), "layers.0");
  EXPECT_EQ(model->unit(config.n_layer + 1).layout.name(), "head");
  const int hs = config.d_model / config.n_head;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"embed_tokens.weight", {64, 16}},
      {"layers.1.input_layernorm.weight", {16}},
      {"layers.1.self_attn.q_proj.weight", {config.n_head * hs, 16}},
      {"layers.1.self_attn.k_proj.weight", {config.n_kv_head * hs, 16}},
      {"layers.1.self_attn.v_proj.weight", {config.n_kv_head * hs, 16}},
      {"layers.1.self_attn.o_proj.weight", {16, config.n_head * hs}},
      {"layers.1.post_attention_layernorm.weight", {16}},
      {"layers.1.mlp.gate_proj.weight", {24, 16}},
      {"layers.1.mlp.up_proj.weight", {24, 16}},
      {"layers.1.mlp.down_proj.weight", {16, 24}},
      {"norm.weight", {16}},
      {"lm_head.weight", {64, 16}},
  };
  for (const auto& [name, shape] : want) {
    const TensorSpec* t = model->FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, shape) << name;
  }
  // Parameters: embed and head V x C each, per layer 2C + (NH + 2 NKV) hs C + C NH hs + 3 F C.
  const size_t C = 16, V = 37, F = 24, L = config.n_layer;
  const size_t per_layer = 2 * C + (4 + 2 * 2) * hs * C + C * 4 * hs + 3 * F * C;
  EXPECT_EQ(model->param_count(), 2 * V * C + C + L * per_layer);
}

TEST(LlamaGradientTest, RejectsShapesItCannotTake) {
  auto ops = kernels::CreateOps("cpu").value();
  auto expect_error = [&](ModelConfig config, const std::string& needle) {
    absl::StatusOr<std::unique_ptr<Llama>> model = Llama::Create(config, 1, false, ops.get());
    ASSERT_FALSE(model.ok()) << needle;
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(model.status().message().find(needle), std::string::npos) << model.status();
  };
  ModelConfig c = TinyLlama();
  c.n_kv_head = 3;  // 4 query heads do not split into 3 groups
  expect_error(c, "n_kv_head");
  c = TinyLlama();
  c.n_head = 8;
  c.d_model = 24;  // head size 3: RoPE needs pairs
  expect_error(c, "even");
  c = TinyLlama();
  c.d_model = 20;
  c.n_head = 2;
  c.n_kv_head = 1;  // head size 10: 20 * 10 is not a multiple of 16
  expect_error(c, "multiples of 16");
  c = TinyLlama();
  c.d_model = 18;  // not a multiple of n_head = 4
  expect_error(c, "d_model");
}

}  // namespace
}  // namespace spillway
