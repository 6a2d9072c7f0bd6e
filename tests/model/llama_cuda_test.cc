// Llama on the CUDA backend (ctest label `gpu`) against the CPU backend on the same weights and
// batch: loss, logits and every Unit's gradients; and on the GPU itself, activation
// checkpointing and repeated runs are bitwise equal. Skips when this build has no CUDA or there
// is no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/model/llama.h"
#include "kernels/backend.h"
#include "tests/model/llama_test_util.h"
#include "tests/model/model_test_util.h"

namespace spillway {
namespace {

using testing_util::RandomTokens;

// fp32 on both backends, sums in different orders (cuBLASLt, flash-style tiles).
constexpr double kLogitsTol = 1e-5;
constexpr double kGradTol = 1e-4;

// Big enough for several attention tiles, a GQA group of 4 and GEMMs with real reductions.
ModelConfig GpuLlama() {
  ModelConfig m = testing_util::TinyLlama();
  m.n_layer = 2;
  m.n_head = 8;
  m.n_kv_head = 2;
  m.d_model = 256;  // head size 32
  m.ffn_hidden = 688;
  m.seq_len = 96;
  m.vocab_size = 1000;
  m.init_std = 0.05;
  m.rope_theta = 10000.0;
  return m;
}

std::vector<float> Download(kernels::Ops& ops, const float* p, size_t n) {
  std::vector<float> host(n);
  ops.CopyToHost(host.data(), p, n * sizeof(float));
  EXPECT_TRUE(ops.Synchronize().ok());
  return host;
}

double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

class LlamaCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<kernels::Ops>> ops = kernels::CreateOps("cuda");
    if (!ops.ok()) GTEST_SKIP() << "no CUDA backend here: " << ops.status().message();
    cuda_ = std::move(ops).value();
    cpu_ = kernels::CreateOps("cpu").value();
  }

  struct Run {
    float loss = 0.0f;
    std::vector<float> logits;
    std::vector<std::vector<float>> grads;  // per Unit
  };

  // Forward and backward of two accumulated micro-batches; returns the last loss and logits.
  Run Train(kernels::Ops& ops, bool checkpointing) {
    const ModelConfig config = GpuLlama();
    const int B = 2;
    auto created = Llama::Create(config, B, checkpointing, &ops);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return {};
    Llama& model = **created;
    EXPECT_TRUE(model.InitParams(5).ok());
    const size_t N = static_cast<size_t>(B) * config.seq_len;
    Run run;
    model.ZeroGrads();
    for (uint64_t micro = 0; micro < 2; ++micro) {
      std::vector<int32_t> inputs = RandomTokens(N, config.vocab_size, 10 + micro);
      std::vector<int32_t> targets = RandomTokens(N, config.vocab_size, 20 + micro);
      targets[7] = -1;
      run.loss = model.Forward(inputs.data(), targets.data());
      run.logits = Download(ops, model.logits(), N * model.padded_vocab());
      model.Backward(0.5f);
    }
    for (int u = 0; u < model.num_units(); ++u) {
      run.grads.push_back(Download(ops, model.unit(u).grads.as<float>(), model.unit(u).numel()));
    }
    return run;
  }

  std::unique_ptr<kernels::Ops> cuda_, cpu_;
};

TEST_F(LlamaCudaTest, MatchesCpu) {
  const Run cpu = Train(*cpu_, false);
  const Run gpu = Train(*cuda_, false);
  EXPECT_NEAR(gpu.loss, cpu.loss, kLogitsTol * cpu.loss);
  EXPECT_LT(RelError(gpu.logits, cpu.logits), kLogitsTol);
  ASSERT_EQ(gpu.grads.size(), cpu.grads.size());
  for (size_t u = 0; u < cpu.grads.size(); ++u) {
    const double err = RelError(gpu.grads[u], cpu.grads[u]);
    EXPECT_LT(err, kGradTol) << "unit " << u;
    std::printf("unit %zu: gradient relative error cuda vs cpu %.3e\n", u, err);
  }
}

TEST_F(LlamaCudaTest, CheckpointingAndReruns) {
  const Run a = Train(*cuda_, false);
  const Run b = Train(*cuda_, false);
  const Run c = Train(*cuda_, true);
  EXPECT_EQ(std::memcmp(&a.loss, &c.loss, sizeof(float)), 0);
  for (size_t u = 0; u < a.grads.size(); ++u) {
    EXPECT_EQ(a.grads[u], b.grads[u]) << "rerun, unit " << u;
    EXPECT_EQ(a.grads[u], c.grads[u]) << "checkpointing, unit " << u;
  }
}

}  // namespace
}  // namespace spillway
