// Llama with activation checkpointing recomputes each layer's forward inside its backward:
// losses and gradients must equal the run that keeps every activation, bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/model/llama.h"
#include "kernels/backend.h"
#include "tests/model/llama_test_util.h"
#include "tests/model/model_test_util.h"

namespace spillway {
namespace {

using testing_util::RandomTokens;
using testing_util::TinyLlama;

TEST(LlamaCheckpointingTest, LossesAndGradientsAreBitwiseEqual) {
  ModelConfig config = TinyLlama();
  config.n_layer = 3;
  const int B = 3;
  auto ops = kernels::CreateOps("cpu").value();
  auto plain = Llama::Create(config, B, false, ops.get()).value();
  auto recomputed = Llama::Create(config, B, true, ops.get()).value();
  ASSERT_TRUE(plain->InitParams(11).ok());
  ASSERT_TRUE(recomputed->InitParams(11).ok());
  EXPECT_LT(recomputed->activation_bytes(), plain->activation_bytes());
  EXPECT_EQ(plain->activation_bytes(), Llama::PlannedActivationBytes(config, B, false));
  EXPECT_EQ(recomputed->activation_bytes(), Llama::PlannedActivationBytes(config, B, true));

  plain->ZeroGrads();
  recomputed->ZeroGrads();
  const size_t N = static_cast<size_t>(B) * config.seq_len;
  // Two micro-batches: gradients accumulate across them in both models.
  for (uint64_t micro = 0; micro < 2; ++micro) {
    std::vector<int32_t> inputs = RandomTokens(N, config.vocab_size, 20 + micro);
    std::vector<int32_t> targets = RandomTokens(N, config.vocab_size, 30 + micro);
    const float a = plain->Forward(inputs.data(), targets.data());
    const float b = recomputed->Forward(inputs.data(), targets.data());
    EXPECT_EQ(std::memcmp(&a, &b, sizeof(float)), 0) << a << " vs " << b;
    plain->Backward(0.5f);
    recomputed->Backward(0.5f);
  }
  for (int u = 0; u < plain->num_units(); ++u) {
    const UnitState& x = plain->unit(u);
    const UnitState& y = recomputed->unit(u);
    ASSERT_EQ(x.grads.bytes(), y.grads.bytes());
    EXPECT_EQ(std::memcmp(x.grads.data(), y.grads.data(), x.grads.bytes()), 0)
        << "gradients of unit " << x.layout.name() << " differ";
  }
}

}  // namespace
}  // namespace spillway
