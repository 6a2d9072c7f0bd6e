// Times cuBLASLt on the GEMMs of a GPT-2 bf16 training step (the layouts and types of
// kernels/cuda/cublaslt_matmul.cc): the heuristic's first algorithm against the fastest of its
// first K, and the epilogues that could replace separate kernels (GELU in the up-projection's
// forward, its gradient in the down-projection's dinp GEMM, bias gradients in the weight GEMMs)
// against those kernels.
//
// usage: gemm_algos [--rows N] [--dim C] [--vocab V] [--algos K] [--reps R] [--search S]
//   (default: GPT-2 124M, N = 16 x 1024 rows, C 768, V 50304, K 16, R 20)
// Prints a row per case: the heuristic's first algorithm (ms), the fastest (ms, its index), and
// the separate kernels' time where the case replaces some. With --search, for each case whose
// name contains S instead: every configuration cuBLASLt accepts (Search), the fastest five.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
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

// A case's cuBLASLt descriptors (ok false where one could not be made); destroyed with it.
struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  bool ok = false;
  Descs() = default;
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
  ~Descs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void MakeDescs(const Case& c, const Buffers& buf, Descs& d) {
  cublasLtMatmulDesc_t& op = d.op;
  cublasLtMatrixLayout_t &la = d.la, &lb = d.lb, &ld = d.ld;
  cublasLtMatmulPreference_t& pref = d.pref;
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
  d.ok = ok;
}

// One run of the case with `algo`; false where it failed.
bool Run(cublasLtHandle_t handle, const Case& c, const Buffers& buf, const Descs& d,
         const cublasLtMatmulAlgo_t& algo, cudaStream_t stream) {
  const float alpha = 1.0f, beta = c.beta;
  return cublasLtMatmul(handle, d.op, &alpha, buf.a, d.la, buf.b, d.lb, &beta, buf.d, d.ld, buf.d,
                        d.ld, &algo, buf.workspace, buf.workspace_bytes,
                        stream) == CUBLAS_STATUS_SUCCESS;
}

Result Time(cublasLtHandle_t handle, const Case& c, const Buffers& buf, int algos, int reps,
            cudaStream_t stream) {
  Result r;
  Descs d;
  MakeDescs(c, buf, d);
  std::vector<cublasLtMatmulHeuristicResult_t> results(algos);
  if (d.ok) {
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(
        handle, d.op, d.la, d.lb, d.ld, d.ld, d.pref, algos, results.data(), &r.returned);
    if (s != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "gemm_algos: %s: heuristic status %d\n", c.name, static_cast<int>(s));
      r.returned = 0;
    }
  }
  for (int i = 0; i < r.returned; ++i) {
    bool failed = false;
    const float ms = TimeMs(
        [&] {
          if (!Run(handle, c, buf, d, results[i].algo, stream)) failed = true;
        },
        reps, stream);
    if (failed || cudaGetLastError() != cudaSuccess) continue;
    if (i == 0) r.first = ms;
    if (r.best < 0 || ms < r.best) r.best = ms, r.best_index = i;
  }
  return r;
}

// --search: every configuration cuBLASLt accepts for the case (each algorithm id, tile, stage
// count, CTA swizzling and cluster shape; no split-K), not only the heuristic's, each timed;
// prints how many ran and the fastest five with their settings.
void Search(cublasLtHandle_t handle, const Case& c, const Buffers& buf, int reps,
            cudaStream_t stream) {
  Descs d;
  MakeDescs(c, buf, d);
  if (!d.ok) return;
  int ids[512], n_ids = 0;
  if (!Ok(cublasLtMatmulAlgoGetIds(handle, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF,
                                   c.d_type, c.d_type, 512, ids, &n_ids),
          "algo ids")) {
    return;
  }
  struct Found {
    float ms;
    int id, tile, stages, swizzle, cluster;
  };
  std::vector<Found> found;
  int checked = 0;
  for (int k = 0; k < n_ids; ++k) {
    cublasLtMatmulAlgo_t algo;
    if (cublasLtMatmulAlgoInit(handle, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF,
                               c.d_type, c.d_type, ids[k], &algo) != CUBLAS_STATUS_SUCCESS) {
      continue;
    }
    auto cap_list = [&](cublasLtMatmulAlgoCapAttributes_t attr) {
      size_t bytes = 0;
      cublasLtMatmulAlgoCapGetAttribute(&algo, attr, nullptr, 0, &bytes);
      std::vector<uint32_t> v(bytes / sizeof(uint32_t));
      if (!v.empty()) cublasLtMatmulAlgoCapGetAttribute(&algo, attr, v.data(), bytes, &bytes);
      if (v.empty()) v.push_back(0);
      return v;
    };
    const std::vector<uint32_t> tiles = cap_list(CUBLASLT_ALGO_CAP_TILE_IDS);
    const std::vector<uint32_t> stages = cap_list(CUBLASLT_ALGO_CAP_STAGES_IDS);
    uint32_t swizzle_support = 0;
    size_t written = 0;
    cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT,
                                      &swizzle_support, sizeof(swizzle_support), &written);
    for (uint32_t tile : tiles) {
      for (uint32_t stage : stages) {
        for (uint32_t swizzle = 0; swizzle <= swizzle_support; ++swizzle) {
          for (uint32_t cluster : {0u, 2u, 3u, 5u, 6u}) {  // auto, 1x1, 2x1, 1x2, 2x2
            cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile,
                                                 sizeof(tile));
            cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stage,
                                                 sizeof(stage));
            cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING,
                                                 &swizzle, sizeof(swizzle));
            if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID,
                                                     &cluster,
                                                     sizeof(cluster)) != CUBLAS_STATUS_SUCCESS &&
                cluster != 0) {
              continue;
            }
            cublasLtMatmulHeuristicResult_t result{};
            if (cublasLtMatmulAlgoCheck(handle, d.op, d.la, d.lb, d.ld, d.ld, &algo, &result) !=
                    CUBLAS_STATUS_SUCCESS ||
                result.workspaceSize > buf.workspace_bytes) {
              continue;
            }
            ++checked;
            bool failed = false;
            const float ms = TimeMs(
                [&] {
                  if (!Run(handle, c, buf, d, algo, stream)) failed = true;
                },
                reps, stream);
            if (failed || cudaGetLastError() != cudaSuccess) continue;
            found.push_back({ms, ids[k], static_cast<int>(tile), static_cast<int>(stage),
                             static_cast<int>(swizzle), static_cast<int>(cluster)});
          }
        }
      }
    }
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.ms < b.ms; });
  const double flop = 2.0 * c.m * c.n * c.k;
  std::printf("search %s: %d ids, %d configurations accepted, %zu ran\n", c.name, n_ids, checked,
              found.size());
  for (size_t i = 0; i < found.size() && i < 5; ++i) {
    const Found& f = found[i];
    std::printf("  %.4f ms %6.1f TFLOP/s: id %d tile %d stages %d swizzle %d cluster %d\n", f.ms,
                flop / f.ms / 1e9, f.id, f.tile, f.stages, f.swizzle, f.cluster);
  }
}

const char* StrArg(int argc, char** argv, const char* name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return nullptr;
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
      {"dinp fcproj DGELU_BGRAD bf16", Nn, Nn, 4 * C, N, C, bf, 0, CUBLASLT_EPILOGUE_DGELU_BGRAD,
       bf, true},
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
  if (const char* pattern = StrArg(argc, argv, "--search"); pattern != nullptr) {
    for (const Case& c : cases) {
      if (std::strstr(c.name, pattern) != nullptr) Search(handle, c, buf, reps, stream);
    }
    return 0;
  }
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
