// Times causal attention alone, forward and backward, on the GPU: the tensor-core kernels
// (kernels/cuda/attention_tc.cu, bf16 operands) and, with --fp32, the fp32 kernels
// (kernels/cuda/attention.cu), on GPT-2 shapes.
//
// usage: attention [--fp32 | --bf16-io] [--reps N] B:T:NH:HS ...
//        (default: the 124M, 1.5B and 3.8B shapes)
// --bf16-io gives the tensor-core kernels qkv, out, dout and dqkv in bf16, as the bf16 trainer
// does; without it they are fp32 and the times include the launchers' rounding passes.
// Prints a row per shape: milliseconds per call and TFLOP/s, counting the causal half of the
// products: forward 2 B NH T^2 HS, backward 2.5 times that (the convention of
// bench/peers/attention_torch.py, which times PyTorch's SDPA on the same shapes).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/launchers.h"

namespace {

bool Check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "attention: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

struct Shape {
  int B, T, NH, HS;
};

float* Upload(size_t n, unsigned seed) {
  std::vector<float> host(n);
  unsigned x = seed;
  for (float& v : host) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>(x >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
  }
  float* dev = nullptr;
  if (!Check(cudaMalloc(&dev, n * sizeof(float)), "cudaMalloc")) return nullptr;
  if (!Check(cudaMemcpy(dev, host.data(), n * sizeof(float), cudaMemcpyHostToDevice), "copy")) {
    return nullptr;
  }
  return dev;
}

enum class Mode { kFp32, kTensorCores, kTensorCoresBf16Io };

// The bf16 copy of a device buffer of n floats, or nullptr on failure.
uint16_t* Bf16Copy(const float* from, size_t n) {
  uint16_t* dev = nullptr;
  if (!Check(cudaMalloc(&dev, n * sizeof(uint16_t)), "cudaMalloc") ||
      !Check(spillway::kernels::cuda::LaunchToBf16(dev, from, n, nullptr), "to bf16")) {
    return nullptr;
  }
  return dev;
}

bool Run(const Shape& s, Mode mode, int reps) {
  namespace k = spillway::kernels::cuda;
  const bool fp32 = mode == Mode::kFp32, io16 = mode == Mode::kTensorCoresBf16Io;
  const size_t rows = static_cast<size_t>(s.B) * s.T, C = static_cast<size_t>(s.NH) * s.HS;
  float* qkv = Upload(rows * 3 * C, 1);
  float* dout = Upload(rows * C, 2);
  float *out = nullptr, *lse = nullptr, *dqkv = nullptr, *scratch = nullptr;
  uint16_t *qkv16 = nullptr, *dout16 = nullptr, *out16 = nullptr, *dqkv16 = nullptr;
  if (io16 && qkv != nullptr && dout != nullptr) {
    qkv16 = Bf16Copy(qkv, rows * 3 * C);
    dout16 = Bf16Copy(dout, rows * C);
    out16 = Bf16Copy(dout, rows * C);
    dqkv16 = Bf16Copy(qkv, rows * 3 * C);
    if (qkv16 == nullptr || dout16 == nullptr || out16 == nullptr || dqkv16 == nullptr)
      return false;
  }
  if (qkv == nullptr || dout == nullptr ||
      !Check(cudaMalloc(&out, rows * C * sizeof(float)), "cudaMalloc") ||
      !Check(cudaMalloc(&lse, rows * s.NH * sizeof(float)), "cudaMalloc") ||
      !Check(cudaMalloc(&dqkv, rows * 3 * C * sizeof(float)), "cudaMalloc") ||
      !Check(cudaMalloc(
                 &scratch,
                 std::max(k::AttentionScratchFloats(s.B, s.T, s.NH) * sizeof(float),
                          k::TensorCoreAttentionScratchBytes(s.B, s.T, s.NH, s.NH, s.HS, false))),
             "cudaMalloc")) {
    return false;
  }
  auto forward = [&] {
    if (fp32)
      return k::LaunchGqaAttentionForward(out, lse, qkv, s.B, s.T, s.NH, s.NH, s.HS, nullptr);
    return io16 ? k::LaunchTensorCoreAttentionForward(nullptr, out16, lse, nullptr, qkv16, s.B, s.T,
                                                      s.NH, s.NH, s.HS, false, scratch, nullptr)
                : k::LaunchTensorCoreAttentionForward(out, nullptr, lse, qkv, nullptr, s.B, s.T,
                                                      s.NH, s.NH, s.HS, false, scratch, nullptr);
  };
  auto backward = [&] {
    if (fp32) {
      return k::LaunchGqaAttentionBackward(dqkv, dout, qkv, out, lse, s.B, s.T, s.NH, s.NH, s.HS,
                                           scratch, nullptr);
    }
    return io16 ? k::LaunchTensorCoreAttentionBackward(
                      nullptr, dqkv16, nullptr, dout16, nullptr, qkv16, nullptr, out16, lse, s.B,
                      s.T, s.NH, s.NH, s.HS, false, scratch, nullptr, nullptr, nullptr)
                : k::LaunchTensorCoreAttentionBackward(
                      dqkv, nullptr, dout, nullptr, qkv, nullptr, out, nullptr, lse, s.B, s.T, s.NH,
                      s.NH, s.HS, false, scratch, nullptr, nullptr, nullptr);
  };
  cudaEvent_t start, mid, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&mid);
  cudaEventCreate(&stop);
  float fwd_ms = 1e30f, bwd_ms = 1e30f;
  for (int r = 0; r < reps + 1; ++r) {  // the first is a warm-up
    cudaEventRecord(start);
    if (!Check(forward(), "forward")) return false;
    cudaEventRecord(mid);
    if (!Check(backward(), "backward")) return false;
    cudaEventRecord(stop);
    if (!Check(cudaEventSynchronize(stop), "run")) return false;
    float f = 0, b = 0;
    cudaEventElapsedTime(&f, start, mid);
    cudaEventElapsedTime(&b, mid, stop);
    if (r > 0) {
      fwd_ms = f < fwd_ms ? f : fwd_ms;
      bwd_ms = b < bwd_ms ? b : bwd_ms;
    }
  }
  const double fwd_flop = 2.0 * s.B * s.NH * static_cast<double>(s.T) * s.T * s.HS;
  std::printf("| %s | B=%d T=%d NH=%d HS=%d | %.3f | %.1f | %.3f | %.1f |\n",
              fp32   ? "spillway fp32"
              : io16 ? "spillway tensor cores, bf16 in and out"
                     : "spillway bf16 tensor cores",
              s.B, s.T, s.NH, s.HS, fwd_ms, fwd_flop / fwd_ms / 1e9, bwd_ms,
              2.5 * fwd_flop / bwd_ms / 1e9);
  for (float* p : {qkv, dout, out, lse, dqkv, scratch}) cudaFree(p);
  for (uint16_t* p : {qkv16, dout16, out16, dqkv16}) cudaFree(p);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Mode mode = Mode::kTensorCores;
  int reps = 5;
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--fp32") {
      mode = Mode::kFp32;
    } else if (arg == "--bf16-io") {
      mode = Mode::kTensorCoresBf16Io;
    } else if (arg == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      Shape s{};
      if (std::sscanf(argv[i], "%d:%d:%d:%d", &s.B, &s.T, &s.NH, &s.HS) != 4) {
        std::fprintf(stderr, "attention: expected B:T:NH:HS, got '%s'\n", argv[i]);
        return 2;
      }
      shapes.push_back(s);
    }
  }
  if (shapes.empty()) shapes = {{16, 1024, 12, 64}, {8, 1024, 25, 64}, {8, 1024, 24, 128}};
  std::printf(
      "| kernels | shape | forward ms | forward TFLOP/s | backward ms | backward TFLOP/s |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    if (!Run(s, mode, reps)) return 1;
  }
  return 0;
}
