// Times full training steps (forward, backward, clipping, AdamW) of GPT-2 (or Llama) on one
// backend.
//
// usage: gpt2_step [--backend cpu|cuda] [--model gpt2|llama] [--layers L] [--heads H]
//                  [--kv-heads K] [--dim C] [--seq T] [--vocab V] [--batch B] [--steps N]
//                  [--warmup W] [--checkpointing]
// Prints a table row and one JSON line. Random tokens, so the timing does not depend on data.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "core/rng.h"
#include "engine/model/model.h"
#include "engine/train/optimizer_step.h"
#include "kernels/backend.h"

namespace spillway {
namespace {

int Main(int argc, char** argv) {
  ModelConfig m;
  m.n_layer = 4;
  m.n_head = 4;
  m.d_model = 128;
  m.seq_len = 128;
  m.vocab_size = 256;
  int batch = 16, steps = 10, warmup = 2;
  bool checkpointing = false;
  std::string backend = "cpu";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--checkpointing") {
      checkpointing = true;
      continue;
    }
    if (arg == "--backend" && i + 1 < argc) {
      backend = argv[++i];
      continue;
    }
    if (arg == "--model" && i + 1 < argc) {
      m.type = argv[++i];
      continue;
    }
    int value = 0;
    if (i + 1 >= argc || !absl::SimpleAtoi(argv[i + 1], &value) || value <= 0) {
      std::fprintf(stderr, "%s needs a positive integer\n", arg.c_str());
      return 2;
    }
    ++i;
    if (arg == "--layers")
      m.n_layer = value;
    else if (arg == "--heads")
      m.n_head = value;
    else if (arg == "--kv-heads")
      m.n_kv_head = value;
    else if (arg == "--dim")
      m.d_model = value;
    else if (arg == "--seq")
      m.seq_len = value;
    else if (arg == "--vocab")
      m.vocab_size = value;
    else if (arg == "--batch")
      batch = value;
    else if (arg == "--steps")
      steps = value;
    else if (arg == "--warmup")
      warmup = value;
    else {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return 2;
    }
  }
  auto ops = kernels::CreateOps(backend);
  if (!ops.ok()) {
    std::fprintf(stderr, "%s\n", std::string(ops.status().message()).c_str());
    return 1;
  }
  auto model = CreateModel(m, batch, checkpointing, ops->get());
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  Model& gpt = **model;
  if (!gpt.InitParams(1).ok()) return 1;
  const size_t N = static_cast<size_t>(batch) * m.seq_len;
  std::vector<int32_t> inputs(N), targets(N);
  Rng rng(2);
  for (size_t i = 0; i < N; ++i) {
    inputs[i] = static_cast<int32_t>(rng.Below(m.vocab_size));
    targets[i] = static_cast<int32_t>(rng.Below(m.vocab_size));
  }
  OptimizerConfig opt;
  const std::unique_ptr<Communicator> one_rank = Communicator::Single();
  std::vector<double> seconds;
  float loss = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto start = std::chrono::steady_clock::now();
    gpt.ZeroGrads();
    loss = gpt.Forward(inputs.data(), targets.data());
    gpt.Backward(1.0f);
    if (!OptimizerStep(gpt, **ops, *one_rank, *one_rank, opt, 1e-4, 1.0, s + 1).ok()) return 1;
    if (absl::Status synced = (*ops)->Synchronize(); !synced.ok()) {
      std::fprintf(stderr, "%s\n", std::string(synced.message()).c_str());
      return 1;
    }
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s >= warmup) seconds.push_back(t);
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  const double tokens_per_s = static_cast<double>(N) / median;
  const double flops_per_token = gpt.flops_per_token();
  std::printf("spillway %s %s | L=%d C=%d T=%d B=%d | %.1f ms/step | %.0f tok/s | %.2f GFLOP/s\n",
              backend.c_str(), m.type.c_str(), m.n_layer, m.d_model, m.seq_len, batch, 1e3 * median,
              tokens_per_s, tokens_per_s * flops_per_token / 1e9);
  std::printf(
      "{\"impl\": \"spillway-%s\", \"model\": \"%s\", \"layers\": %d, \"dim\": %d, \"seq\": %d, "
      "\"batch\": %d, "
      "\"ms_per_step\": %.3f, \"tokens_per_s\": %.1f, \"loss\": %.4f}\n",
      backend.c_str(), m.type.c_str(), m.n_layer, m.d_model, m.seq_len, batch, 1e3 * median,
      tokens_per_s, loss);
  return 0;
}

}  // namespace
}  // namespace spillway

int main(int argc, char** argv) { return spillway::Main(argc, argv); }
