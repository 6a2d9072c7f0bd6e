// Times full training steps (forward, backward, clipping, AdamW) of GPT-2 (or Llama) on one
// backend, as the trainer runs them: the loss and the gradients' sum of squares accumulate on
// the backend and are read back once per step.
//
// usage: gpt2_step [--backend cpu|cuda] [--model gpt2|llama] [--layers L] [--heads H]
//                  [--kv-heads K] [--dim C] [--seq T] [--vocab V] [--batch B] [--steps N]
//                  [--warmup W] [--checkpointing] [--precision fp32|bf16|fp16]
//                  [--no-autotune] [--no-graph]
// --no-autotune: the GEMMs take cuBLASLt's first algorithm (trainer.matmul_autotune false).
// --no-graph: the timed steps issue the forward and backward op by op, instead of replaying
// them as the graph recorded after the warm-up (trainer.cuda_graphs false).
// Prints the start-up memory plan, a table row (tokens/s, TFLOP/s, MFU against the device's
// peak, GPU memory in use) and one JSON line. Random tokens, so the timing does not depend on
// data. fp16 runs with a static loss scale of 1024 (no overflow at these scales).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "core/rng.h"
#include "engine/model/device_scalars.h"
#include "engine/model/model.h"
#include "engine/train/optimizer_step.h"
#include "engine/train/progress.h"
#include "kernels/backend.h"
#include "offload/buffer.h"
#if SPILLWAY_BENCH_CUDA
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#endif

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
  bool checkpointing = false, autotune = true, graph = true;
  std::string backend = "cpu";
  std::string precision_name = "fp32";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--precision" && i + 1 < argc) {
      precision_name = argv[++i];
      continue;
    }
    if (arg == "--checkpointing") {
      checkpointing = true;
      continue;
    }
    if (arg == "--no-autotune") {
      autotune = false;
      continue;
    }
    if (arg == "--no-graph") {
      graph = false;
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
  kernels::MatmulPrecision precision = kernels::MatmulPrecision::kFp32;
  double loss_scale = 1.0;
  if (precision_name == "bf16") {
    precision = kernels::MatmulPrecision::kBf16;
  } else if (precision_name == "fp16") {
    precision = kernels::MatmulPrecision::kFp16;
    loss_scale = 1024.0;
  } else if (precision_name != "fp32") {
    std::fprintf(stderr, "--precision: fp32, bf16 or fp16\n");
    return 2;
  }
  (*ops)->SetMatmulPrecision(precision);  // before the model: it sizes bf16 activations
  (*ops)->SetMatmulAutotune(autotune);
  auto model = CreateModel(m, batch, checkpointing, ops->get());
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  Model& gpt = **model;
  if (!gpt.InitParams(1).ok()) return 1;
  size_t param_bytes = 0, grad_bytes = 0, optimizer_bytes = 0;
  for (const UnitState& unit : gpt.units()) {
    param_bytes += unit.params.bytes();
    grad_bytes += unit.grads.bytes();
    optimizer_bytes += unit.exp_avg.bytes() + unit.exp_avg_sq.bytes();
  }
  std::printf(
      "memory plan: parameters %s, gradients %s, optimizer state %s, activations per "
      "micro-batch %s (%s with activation checkpointing %s)\n",
      FormatBytes(param_bytes).c_str(), FormatBytes(grad_bytes).c_str(),
      FormatBytes(optimizer_bytes).c_str(), FormatBytes(gpt.activation_bytes()).c_str(),
      FormatBytes(PlannedActivationBytes(m, batch, !checkpointing)).c_str(),
      checkpointing ? "off" : "on");
  const size_t N = static_cast<size_t>(batch) * m.seq_len;
  // Page-locked for a GPU: a graph's copies read them at replay.
  auto tokens = Buffer::Allocate(2 * N * sizeof(int32_t),
                                 backend == "cuda" ? Tier::kPinnedHost : Tier::kHost, "tokens");
  if (!tokens.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tokens.status().message()).c_str());
    return 1;
  }
  int32_t* inputs = tokens->as<int32_t>();
  int32_t* targets = inputs + N;
  Rng rng(2);
  for (size_t i = 0; i < N; ++i) {
    inputs[i] = static_cast<int32_t>(rng.Below(m.vocab_size));
    targets[i] = static_cast<int32_t>(rng.Below(m.vocab_size));
  }
  OptimizerConfig opt;
  const std::unique_ptr<Communicator> one_rank = Communicator::Single();
  auto scalars = DeviceScalars::Create(**ops, 2, "step scalars");
  if (!scalars.ok()) return 1;
  std::vector<double> seconds;
  std::vector<double> issue_seconds;  // host time to issue the forward and backward
  double loss = 0;
  GradScaling scaling;
  scaling.loss_scale = loss_scale;
  scaling.skip_non_finite = precision == kernels::MatmulPrecision::kFp16;
  const auto forward_backward = [&] {
    gpt.ZeroGrads();
    scalars->Zero(**ops);
    gpt.ForwardBackward(inputs, targets, scalars->at(0), static_cast<float>(loss_scale));
    AddGradSumSquares(gpt, **ops, scalars->at(1));
  };
  std::unique_ptr<kernels::OpsGraph> replay;
#if SPILLWAY_BENCH_CUDA
  const bool on_cuda = backend == "cuda";
  auto* stream = static_cast<cudaStream_t>((*ops)->native_stream());
  cudaEvent_t gpu_start = nullptr, gpu_end = nullptr;
  std::vector<float> gpu_ms;  // forward and backward on the GPU, by events around them
  if (on_cuda &&
      (cudaEventCreate(&gpu_start) != cudaSuccess || cudaEventCreate(&gpu_end) != cudaSuccess)) {
    return 1;
  }
#endif
  for (int s = 0; s < warmup + steps; ++s) {
    // As the trainer: recorded once the first step has settled the ops' allocations and tuning.
    if (graph && replay == nullptr && s == std::max(warmup, 1)) {
      if (absl::Status begun = (*ops)->BeginCapture(); begun.ok()) {
        forward_backward();
        auto captured = (*ops)->EndCapture();
        if (!captured.ok()) {
          std::fprintf(stderr, "%s\n", std::string(captured.status().message()).c_str());
          return 1;
        }
        replay = *std::move(captured);
      } else if (!absl::IsUnimplemented(begun)) {
        std::fprintf(stderr, "%s\n", std::string(begun.message()).c_str());
        return 1;
      }
    }
#if SPILLWAY_BENCH_CUDA
    // Profilers started with --profile-from-start off see the timed steps only.
    if (s == warmup && on_cuda) (void)cudaProfilerStart();
#endif
    const auto start = std::chrono::steady_clock::now();
#if SPILLWAY_BENCH_CUDA
    if (on_cuda) (void)cudaEventRecord(gpu_start, stream);
#endif
    if (replay != nullptr) {
      if (absl::Status replayed = replay->Replay(); !replayed.ok()) {
        std::fprintf(stderr, "%s\n", std::string(replayed.message()).c_str());
        return 1;
      }
    } else {
      forward_backward();
    }
#if SPILLWAY_BENCH_CUDA
    if (on_cuda) (void)cudaEventRecord(gpu_end, stream);
#endif
    const auto issued = std::chrono::steady_clock::now();
    double host[2];
    if (absl::Status read = scalars->Read(**ops, host); !read.ok()) {
      std::fprintf(stderr, "%s\n", std::string(read.message()).c_str());
      return 1;
    }
    loss = host[0];
    if (!ApplyOptimizerStep(gpt, **ops, *one_rank, *one_rank, opt, 1e-4, 1.0, s + 1, host[1],
                            scaling)
             .ok()) {
      return 1;
    }
    if (absl::Status synced = (*ops)->Synchronize(); !synced.ok()) {
      std::fprintf(stderr, "%s\n", std::string(synced.message()).c_str());
      return 1;
    }
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s >= warmup) {
#if SPILLWAY_BENCH_CUDA
      float ms = 0;
      if (on_cuda && cudaEventElapsedTime(&ms, gpu_start, gpu_end) == cudaSuccess) {
        gpu_ms.push_back(ms);
      }
#endif
      seconds.push_back(t);
      issue_seconds.push_back(std::chrono::duration<double>(issued - start).count());
    }
  }
  std::sort(seconds.begin(), seconds.end());
  std::sort(issue_seconds.begin(), issue_seconds.end());
  const double median = seconds[seconds.size() / 2];
  const double tokens_per_s = static_cast<double>(N) / median;
  const double tflops = tokens_per_s * gpt.flops_per_token() / 1e12;
  const double peak = (*ops)->peak_flops();
  const double mfu = peak > 0 ? tflops * 1e12 / peak : 0.0;
  double memory_gib = 0.0;  // device memory in use at the end, CUDA context included
#if SPILLWAY_BENCH_CUDA
  if (backend == "cuda") {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      memory_gib = static_cast<double>(total_bytes - free_bytes) / (1 << 30);
    }
  }
#endif
  std::printf(
      "spillway %s %s %s | L=%d C=%d T=%d B=%d | %.1f ms/step | %.0f tok/s | %.1f TFLOP/s | "
      "MFU %.1f%% | %.1f GiB\n",
      backend.c_str(), precision_name.c_str(), m.type.c_str(), m.n_layer, m.d_model, m.seq_len,
      batch, 1e3 * median, tokens_per_s, tflops, 100 * mfu, memory_gib);
  // Near the step's time, the host's issuing (not the GPU) bounds the step.
  std::printf("host: forward and backward issued in %.1f ms of the %.1f ms step (medians)\n",
              1e3 * issue_seconds[issue_seconds.size() / 2], 1e3 * median);
#if SPILLWAY_BENCH_CUDA
  if (!gpu_ms.empty()) {
    std::sort(gpu_ms.begin(), gpu_ms.end());
    std::printf("gpu: forward and backward %.2f ms (median, events)%s\n", gpu_ms[gpu_ms.size() / 2],
                replay != nullptr ? " as a graph" : "");
  }
#endif
  std::printf(
      "{\"impl\": \"spillway-%s-%s\", \"model\": \"%s\", \"layers\": %d, \"dim\": %d, "
      "\"seq\": %d, \"batch\": %d, \"ms_per_step\": %.3f, \"tokens_per_s\": %.1f, "
      "\"tflops\": %.2f, \"mfu\": %.4f, \"memory_gib\": %.2f, \"loss\": %.4f}\n",
      backend.c_str(), precision_name.c_str(), m.type.c_str(), m.n_layer, m.d_model, m.seq_len,
      batch, 1e3 * median, tokens_per_s, tflops, mfu, memory_gib, loss);
  return 0;
}

}  // namespace
}  // namespace spillway

int main(int argc, char** argv) { return spillway::Main(argc, argv); }
