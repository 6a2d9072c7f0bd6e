// Times cuBLASLt on the GEMMs of a GPT-2 bf16 training step (the layouts and types of
// kernels/cuda/cublaslt_matmul.cc): the heuristic's first algorithm against the fastest of its
// first K, and the epilogues that could replace separate kernels (GELU in the up-projection's
// forward, its gradient in the down-projection's dinp GEMM, bias gradients in the weight GEMMs)
// against those kernels.
//
// usage: gemm_algos [--rows N] [--dim C] [--vocab V] [--algos K] [--reps R]
//   (default: GPT-2 124M, N = 16 x 1024 rows, C 768, V 50304, K 16, R 20)
// Prints a row per case: the heuristic's first algorithm (ms), the fastest (ms, its index), and
// the separate kernels' time where the case replaces some.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/launchers.h"

namespace {

bool Ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "gemm_algos: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}
bool Ok(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  std::fprintf(stderr, "gemm_algos: %s: cuBLAS status %d\n", what, static_cast<int>(s));
  return false;
}

// Column-major D (m,n) = op(A) op(B) (+ beta D), A and B bf16, fp32 accumulation.
struct Case {
  const char* name;
  cublasOperation_t ta, tb;
  int m, n, k;
  cudaDataType_t d_type;
  float beta;
  cublasLtEpilogue_t epilogue;
  cudaDataType_t bias_type;  // of the bias (or its gradient), where the epilogue has one
  bool aux;                  // the epilogue reads or writes an aux matrix (bf16, ld m)
};

// Device buffers big enough for every case (bf16 A, B, aux; D up to fp32; bias fp32).
struct Buffers {
  void *a, *b, *d, *aux, *bias, *workspace;
  size_t workspace_bytes;
};

bool Fill(void* p, size_t bytes) {
  std::vector<uint16_t> host(bytes / 2);
  uint32_t x = 12345;
  for (uint16_t& v : host) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<uint16_t>(0x3c00 + (x >> 24) % 256 - 128);  // bf16 in about [0.5, 2) / 2^k
  }
  return Ok(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice), "copy");
}

template <typename F>
float TimeMs(F run, int reps, cudaStream_t stream) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < 3; ++i) run();
  cudaEventRecord(start, stream);
  for (int i = 0; i < reps; ++i) run();
  cudaEventRecord(stop, stream);
  cudaEventSynchronize(stop);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / reps;
}

struct Result {
  float first = -1.0f, best = -1.0f;
  int best_index = -1, returned = 0;
};

Result Time(cublasLtHandle_t handle, const Case& c, const Buffers& buf, int algos, int reps,
            cudaStream_t stream) {
  Result r;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  bool ok = Ok(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  const int32_t ta = c.ta, tb = c.tb;
  ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)),
                "transa");
  ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)),
                "transb");
  if (c.epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    const uint32_t e = c.epilogue;
    ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)),
                  "epilogue");
    if (c.epilogue != CUBLASLT_EPILOGUE_DGELU && c.epilogue != CUBLASLT_EPILOGUE_GELU_AUX) {
      const void* bias = buf.bias;
      const int32_t bias_type = c.bias_type;
      ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof(bias)),
                    "bias");
      ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                   &bias_type, sizeof(bias_type)),
                    "bias type");
    }
    if (c.aux) {
      const void* aux = buf.aux;
      const int64_t aux_ld = c.m;
      const int32_t aux_type = CUDA_R_16BF;
      ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                   &aux, sizeof(aux)),
                    "aux");
      ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                   &aux_ld, sizeof(aux_ld)),
                    "aux ld");
      ok = ok && Ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE,
                                                   &aux_type, sizeof(aux_type)),
                    "aux type");
    }
  }
  const bool an = c.ta == CUBLAS_OP_N, bn = c.tb == CUBLAS_OP_N;
  ok = ok && Ok(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, an ? c.m : c.k, an ? c.k : c.m,
                                           an ? c.m : c.k),
                "layout a");
  ok = ok && Ok(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, bn ? c.k : c.n, bn ? c.n : c.k,
                                           bn ? c.k : c.n),
                "layout b");
  ok = ok && Ok(cublasLtMatrixLayoutCreate(&ld, c.d_type, c.m, c.n, c.m), "layout d");
  ok = ok && Ok(cublasLtMatmulPreferenceCreate(&pref), "pref");
  const uint64_t ws = buf.workspace_bytes;
  ok = ok && Ok(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &ws, sizeof(ws)),
                "pref ws");
  std::vector<cublasLtMatmulHeuristicResult_t> results(algos);
  if (ok) {
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(handle, op, la, lb, ld, ld, pref, algos,
                                                            results.data(), &r.returned);
    if (s != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "gemm_algos: %s: heuristic status %d\n", c.name, static_cast<int>(s));
      r.returned = 0;
    }
  }
  const float alpha = 1.0f, beta = c.beta;
  for (int i = 0; i < r.returned; ++i) {
    bool failed = false;
    const float ms = TimeMs(
        [&] {
          if (cublasLtMatmul(handle, op, &alpha, buf.a, la, buf.b, lb, &beta, buf.d, ld, buf.d, ld,
                             &results[i].algo, buf.workspace, buf.workspace_bytes,
                             stream) != CUBLAS_STATUS_SUCCESS) {
            failed = true;
          }
        },
        reps, stream);
    if (failed || cudaGetLastError() != cudaSuccess) continue;
    if (i == 0) r.first = ms;
    if (r.best < 0 || ms < r.best) r.best = ms, r.best_index = i;
  }
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (ld) cublasLtMatrixLayoutDestroy(ld);
  if (op) cublasLtMatmulDescDestroy(op);
  return r;
}

int Arg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  namespace k = spillway::kernels::cuda;
  const int N = Arg(argc, argv, "--rows", 16 * 1024), C = Arg(argc, argv, "--dim", 768);
  const int V = Arg(argc, argv, "--vocab", 50304), algos = Arg(argc, argv, "--algos", 16);
  const int reps = Arg(argc, argv, "--reps", 20);
  const auto T = CUBLAS_OP_T, Nn = CUBLAS_OP_N;
  const auto bf = CUDA_R_16BF, f32 = CUDA_R_32F;
  const auto none = CUBLASLT_EPILOGUE_DEFAULT;
  // Forward: m OC, n N, k C (A the weight, transposed). dinp: m C, n N, k OC. dweight: m C, n OC,
  // k N, accumulating into fp32.
  const std::vector<Case> cases = {
      {"fwd qkv (bias, bf16 out)", T, Nn, 3 * C, N, C, bf, 0, CUBLASLT_EPILOGUE_BIAS, bf, false},
      {"fwd attproj (bias, fp32 out)", T, Nn, C, N, C, f32, 1, CUBLASLT_EPILOGUE_BIAS, f32, false},
      {"fwd fc (bias, bf16 out)", T, Nn, 4 * C, N, C, bf, 0, CUBLASLT_EPILOGUE_BIAS, bf, false},
      {"fwd fc GELU_AUX_BIAS", T, Nn, 4 * C, N, C, bf, 0, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bf,
       true},
      {"fwd fcproj (bias, fp32 out)", T, Nn, C, N, 4 * C, f32, 1, CUBLASLT_EPILOGUE_BIAS, f32,
       false},
      {"fwd head (bf16 out)", T, Nn, V, N, C, bf, 0, none, bf, false},
      {"dinp qkv", Nn, Nn, C, N, 3 * C, bf, 0, none, bf, false},
      {"dinp attproj", Nn, Nn, C, N, C, bf, 0, none, bf, false},
      {"dinp fc", Nn, Nn, C, N, 4 * C, bf, 0, none, bf, false},
      {"dinp fcproj", Nn, Nn, 4 * C, N, C, bf, 0, none, bf, false},
      {"dinp fcproj DGELU", Nn, Nn, 4 * C, N, C, bf, 0, CUBLASLT_EPILOGUE_DGELU, bf, true},
      {"dinp fcproj DGELU_BGRAD f32", Nn, Nn, 4 * C, N, C, bf, 0, CUBLASLT_EPILOGUE_DGELU_BGRAD,
       f32, true},
      {"dinp head", Nn, Nn, C, N, V, bf, 0, none, bf, false},
      {"dW qkv", Nn, T, C, 3 * C, N, f32, 1, none, f32, false},
      {"dW qkv BGRADB f32", Nn, T, C, 3 * C, N, f32, 1, CUBLASLT_EPILOGUE_BGRADB, f32, false},
      {"dW attproj", Nn, T, C, C, N, f32, 1, none, f32, false},
      {"dW fc", Nn, T, C, 4 * C, N, f32, 1, none, f32, false},
      {"dW fc BGRADB f32", Nn, T, C, 4 * C, N, f32, 1, CUBLASLT_EPILOGUE_BGRADB, f32, false},
      {"dW fcproj", Nn, T, 4 * C, C, N, f32, 1, none, f32, false},
      {"dW head", Nn, T, C, V, N, f32, 1, none, f32, false},
  };
  Buffers buf{};
  const size_t big = static_cast<size_t>(N) * V;  // the largest operand, in elements
  buf.workspace_bytes = size_t{32} << 20;
  if (!Ok(cudaMalloc(&buf.a, big * 2), "malloc") || !Ok(cudaMalloc(&buf.b, big * 2), "malloc") ||
      !Ok(cudaMalloc(&buf.d, big * 4), "malloc") ||
      !Ok(cudaMalloc(&buf.aux, static_cast<size_t>(N) * 4 * C * 2), "malloc") ||
      !Ok(cudaMalloc(&buf.bias, static_cast<size_t>(V) * 4), "malloc") ||
      !Ok(cudaMalloc(&buf.workspace, buf.workspace_bytes), "malloc")) {
    return 1;
  }
  if (!Fill(buf.a, big * 2) || !Fill(buf.b, big * 2) ||
      !Fill(buf.aux, static_cast<size_t>(N) * 4 * C * 2) ||
      !Ok(cudaMemset(buf.d, 0, big * 4), "memset") ||
      !Ok(cudaMemset(buf.bias, 0, static_cast<size_t>(V) * 4), "memset")) {
    return 1;
  }
  cublasLtHandle_t handle = nullptr;
  if (!Ok(cublasLtCreate(&handle), "cublasLtCreate")) return 1;
  cudaStream_t stream = nullptr;
  std::printf("N %d C %d V %d, top %d algorithms, %d reps\n", N, C, V, algos, reps);
  std::printf("%-32s %8s %8s %5s %4s %7s\n", "case", "first", "best", "index", "of", "TFLOP/s");
  double total_first = 0, total_best = 0;
  for (const Case& c : cases) {
    const Result r = Time(handle, c, buf, algos, reps, stream);
    const double flop = 2.0 * c.m * c.n * c.k;
    std::printf("%-32s %8.4f %8.4f %5d %4d %7.1f\n", c.name, r.first, r.best, r.best_index,
                r.returned, r.best > 0 ? flop / (r.best * 1e9) : 0.0);
    if (c.epilogue == none || c.epilogue == CUBLASLT_EPILOGUE_BIAS) {
      if (std::strstr(c.name, "GELU") == nullptr) total_first += r.first, total_best += r.best;
    }
  }
  std::printf("plain cases, sum: first %.3f ms, best %.3f ms\n", total_first, total_best);
  // The separate kernels the epilogues would replace.
  auto* a16 = static_cast<uint16_t*>(buf.a);
  auto* b16 = static_cast<uint16_t*>(buf.b);
  auto* aux16 = static_cast<uint16_t*>(buf.aux);
  float* scratch = static_cast<float*>(buf.d);  // the bias gradient's, zeroed for its counters
  constexpr size_t kScratchFloats = size_t{1} << 18;
  if (!Ok(cudaMemset(scratch, 0, kScratchFloats * sizeof(float)), "cudaMemset")) return 1;
  const size_t hidden = static_cast<size_t>(N) * 4 * C;
  std::printf("GeluForwardBf16 (N x 4C)          %8.4f\n",
              TimeMs([&] { k::LaunchGeluForwardBf16(a16, aux16, hidden, stream); }, reps, stream));
  std::printf(
      "GeluBackwardBf16 (N x 4C)         %8.4f\n",
      TimeMs([&] { k::LaunchGeluBackwardBf16(a16, aux16, a16, hidden, stream); }, reps, stream));
  for (int oc : {3 * C, 4 * C}) {
    std::printf("BiasGradientBf16 (N x %d)       %8.4f\n", oc,
                TimeMs(
                    [&] {
                      k::LaunchBiasGradientBf16(static_cast<float*>(buf.bias), b16, N, oc, scratch,
                                                kScratchFloats, stream);
                    },
                    reps, stream));
  }
  return Ok(cudaDeviceSynchronize(), "sync") ? 0 : 1;
}
