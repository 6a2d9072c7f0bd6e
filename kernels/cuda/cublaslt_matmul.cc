#include "kernels/cuda/cublaslt_matmul.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/status.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/launchers.h"
#include "kernels/ops.h"

namespace spillway::kernels::cuda {
namespace {

// Row-major matrices are column-major matrices transposed: a row-major (R,C) buffer with row
// stride C is the column-major (C,R) matrix with leading dimension C. So, with _cm denoting
// that column-major view,
//   Forward  out (N,OC) = inp @ W^T:     out_cm (OC,N)  = W_cm (C,OC)^T @ inp_cm (C,N)
//   Backward dinp (N,C) += dout @ W:     dinp_cm (C,N)  = W_cm (C,OC)   @ dout_cm (OC,N)
//            dweight (OC,C) += dout^T @ inp:
//                                        dW_cm (C,OC)   = inp_cm (C,N)  @ dout_cm (OC,N)^T

// One column-major GEMM D (m,n) = op(A) @ op(B) + beta * C (+ bias broadcast over columns), where
// C is D itself unless `c` is set (then C has D's layout and must not alias it).
// op(A) is (m,k): A is stored (m,k) for transa = N, (k,m) for T; likewise op(B) is (k,n).
// A and B hold ab_type values (fp32, or bf16 copies made by ToBf16); D holds d_type values.
struct Gemm {
  cublasOperation_t transa;
  cublasOperation_t transb;
  int m, n, k;
  const void* a;
  int lda;
  const void* b;
  int ldb;
  void* d;
  int ldd;
  float beta;
  const void* bias;  // (m), added to every column of D (CUBLASLT_EPILOGUE_BIAS); may be null
  cublasComputeType_t compute;
  cudaDataType_t bias_type = CUDA_R_32F;  // fp32, or D's 16-bit type where D is 16-bit
  cudaDataType_t ab_type = CUDA_R_32F;
  const float* c = nullptr;            // beta's operand; null: D
  cudaDataType_t d_type = CUDA_R_32F;  // D's (and C's) type
  // Another epilogue than the bias's (DEFAULT: BIAS where bias is set, else none): GELU_AUX(_BIAS)
  // writes the pre-activation to aux, DGELU reads it.
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* aux = nullptr;  // (m,n) bf16, leading dimension m

  const void* c_or_d() const { return c != nullptr ? c : d; }
  cublasLtEpilogue_t epilogue_or_bias() const {
    if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) return epilogue;
    return bias != nullptr ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  }
};

// Largest power of two <= 256 dividing the address (4 at least for a float pointer).
uint32_t Alignment(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 4 && address % align != 0) align >>= 1;
  return align;
}

// RAII owners of the cuBLASLt descriptors.
struct MatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  ~MatmulDesc() {
    if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
  }
};
struct Layout {
  cublasLtMatrixLayout_t layout = nullptr;
  ~Layout() {
    if (layout != nullptr) cublasLtMatrixLayoutDestroy(layout);
  }
};
struct Preference {
  cublasLtMatmulPreference_t pref = nullptr;
  ~Preference() {
    if (pref != nullptr) cublasLtMatmulPreferenceDestroy(pref);
  }
};

// The algorithms chosen by the heuristic, per handle and problem (shape, transposes, epilogue,
// pointer alignments): the heuristic query costs more than the descriptors.
using AlgoKey = std::array<int64_t, 21>;

struct AlgoCache {
  std::mutex mu;
  std::map<AlgoKey, std::optional<cublasLtMatmulAlgo_t>> algos;  // nullopt: none (NotFound)
};

AlgoCache& Cache() {
  static AlgoCache* cache = new AlgoCache();
  return *cache;
}

AlgoKey KeyOf(cublasLtHandle_t handle, const Gemm& g) {
  return {static_cast<int64_t>(reinterpret_cast<uintptr_t>(handle)),
          g.transa,
          g.transb,
          g.m,
          g.n,
          g.k,
          g.lda,
          g.ldb,
          g.ldd,
          g.epilogue_or_bias(),
          g.aux != nullptr ? Alignment(g.aux) : 0,
          g.bias != nullptr,
          Alignment(g.a),
          Alignment(g.b),
          Alignment(g.d),
          Alignment(g.c_or_d()),
          g.bias != nullptr ? Alignment(g.bias) : 0,
          g.compute,
          g.ab_type,
          g.d_type,
          g.bias_type};
}

// The descriptors of one Gemm.
struct GemmDescs {
  MatmulDesc op;
  Layout a, b, d;
};

absl::Status MakeDescs(const Gemm& g, GemmDescs& descs) {
  SPW_CUBLAS_CHECK(cublasLtMatmulDescCreate(&descs.op.desc, g.compute, CUDA_R_32F));
  const int32_t transa = g.transa;
  const int32_t transb = g.transb;
  SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(descs.op.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                  &transa, sizeof(transa)));
  SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(descs.op.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                  &transb, sizeof(transb)));
  const uint32_t epilogue = g.epilogue_or_bias();
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(descs.op.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                    &epilogue, sizeof(epilogue)));
  }
  if (g.aux != nullptr) {
    const void* aux = g.aux;
    const int64_t aux_ld = g.m;
    const cudaDataType_t aux_type = CUDA_R_16BF;
    SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        descs.op.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
    SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        descs.op.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
    SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        descs.op.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type, sizeof(aux_type)));
  }
  if (g.bias != nullptr) {
    const void* bias = g.bias;
    SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        descs.op.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    const cudaDataType_t bias_type = g.bias_type;  // its default is D's type
    SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        descs.op.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  const bool a_n = g.transa == CUBLAS_OP_N;
  const bool b_n = g.transb == CUBLAS_OP_N;
  SPW_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&descs.a.layout, g.ab_type, a_n ? g.m : g.k,
                                              a_n ? g.k : g.m, g.lda));
  SPW_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&descs.b.layout, g.ab_type, b_n ? g.k : g.n,
                                              b_n ? g.n : g.k, g.ldb));
  SPW_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&descs.d.layout, g.d_type, g.m, g.n, g.ldd));
  return absl::OkStatus();
}

// One run of g with `algo`, its output going to d (g.d, or a stand-in of D's shape).
absl::Status Launch(const CublasLtRun& lt, const Gemm& g, const GemmDescs& descs,
                    const cublasLtMatmulAlgo_t& algo, void* d, cudaStream_t stream) {
  const float alpha = 1.0f;
  const float beta = g.beta;
  SPW_CUBLAS_CHECK(cublasLtMatmul(lt.handle, descs.op.desc, &alpha, g.a, descs.a.layout, g.b,
                                  descs.b.layout, &beta, g.c_or_d(), descs.d.layout, d,
                                  descs.d.layout, &algo, lt.workspace, lt.workspace_bytes, stream));
  return absl::OkStatus();
}

// The index of the fastest of `results` on g (a warm-up run, then three timed), on `stream`,
// waiting for it. Runs write g.d (which the real run overwrites) or, where D accumulates (beta
// != 0 with C = D), a stand-in of its shape, allocated for the trials and freed after them (so
// that memory outside the plan is held only while they run; cudaFree waits for the device); 0
// (untimed) where that allocation fails or no candidate runs.
absl::StatusOr<int> Fastest(const CublasLtRun& lt, const Gemm& g, const GemmDescs& descs,
                            const std::vector<cublasLtMatmulHeuristicResult_t>& results,
                            cudaStream_t stream) {
  void* d = g.d;
  if (g.c == nullptr && g.beta != 0.0f) {
    const size_t bytes = static_cast<size_t>(g.ldd) * g.n * (g.d_type == CUDA_R_32F ? 4 : 2);
    if (cudaMalloc(&d, bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
  }
  cudaEvent_t start = nullptr, stop = nullptr;
  int best = -1;
  float best_ms = 0.0f;
  absl::Status status = [&]() -> absl::Status {
    SPW_CUDA_CHECK(cudaEventCreate(&start));
    SPW_CUDA_CHECK(cudaEventCreate(&stop));
    for (size_t i = 0; i < results.size(); ++i) {
      if (!Launch(lt, g, descs, results[i].algo, d, stream).ok()) continue;
      SPW_CUDA_CHECK(cudaEventRecord(start, stream));
      for (int r = 0; r < 3; ++r) {
        SPW_RETURN_IF_ERROR(Launch(lt, g, descs, results[i].algo, d, stream));
      }
      SPW_CUDA_CHECK(cudaEventRecord(stop, stream));
      SPW_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0.0f;
      SPW_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (best < 0 || ms < best_ms) best = static_cast<int>(i), best_ms = ms;
    }
    return absl::OkStatus();
  }();
  if (start != nullptr) cudaEventDestroy(start);
  if (stop != nullptr) cudaEventDestroy(stop);
  if (d != g.d) {
    const cudaError_t freed = cudaFree(d);
    if (status.ok()) status = CudaStatus(freed, "cudaFree");
  }
  if (!status.ok()) return status;
  return std::max(best, 0);
}

// The cached algorithm for g, or else the heuristic's first choice or, for bf16 operands with
// lt.candidates > 1, the fastest of its first lt.candidates (Fastest), then cached; NotFound
// when it has none.
absl::StatusOr<cublasLtMatmulAlgo_t> FindAlgo(const CublasLtRun& lt, const Gemm& g,
                                              const GemmDescs& descs, cudaStream_t stream) {
  const AlgoKey key = KeyOf(lt.handle, g);
  AlgoCache& cache = Cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.algos.find(key);
    if (it != cache.algos.end()) {
      if (!it->second.has_value()) return absl::NotFoundError("cuBLASLt: no algorithm (cached)");
      return *it->second;
    }
  }
  Preference pref;
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.pref));
  const uint64_t max_workspace = lt.workspace_bytes;
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof(max_workspace)));
  // The defaults assume 256-byte aligned buffers; sub-buffers may be aligned less.
  const uint32_t align_a = Alignment(g.a);
  const uint32_t align_b = Alignment(g.b);
  const uint32_t align_c = Alignment(g.c_or_d());
  const uint32_t align_d = Alignment(g.d);
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(
      g.ab_type == CUDA_R_16BF ? std::max(lt.candidates, 1) : 1);
  int returned = 0;
  const cublasStatus_t heuristic = cublasLtMatmulAlgoGetHeuristic(
      lt.handle, descs.op.desc, descs.a.layout, descs.b.layout, descs.d.layout, descs.d.layout,
      pref.pref, static_cast<int>(results.size()), results.data(), &returned);
  if (heuristic == CUBLAS_STATUS_NOT_SUPPORTED ||
      (heuristic == CUBLAS_STATUS_SUCCESS && returned == 0)) {
    std::lock_guard<std::mutex> lock(cache.mu);
    cache.algos.emplace(key, std::nullopt);
    return absl::NotFoundError("cublasLtMatmulAlgoGetHeuristic: no algorithm");
  }
  SPW_CUBLAS_CHECK(heuristic);
  results.resize(returned);
  for (const cublasLtMatmulHeuristicResult_t& r : results) SPW_CUBLAS_CHECK(r.state);
  int chosen = 0;
  if (results.size() > 1) {
    SPW_ASSIGN_OR_RETURN(chosen, Fastest(lt, g, descs, results, stream));
  }
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.algos.emplace(key, results[chosen].algo);
  return results[chosen].algo;
}

// Looks g's algorithm up (and caches it) without running it (but for Fastest's trials).
absl::Status Prepare(const CublasLtRun& lt, const Gemm& g, cudaStream_t stream) {
  GemmDescs descs;
  SPW_RETURN_IF_ERROR(MakeDescs(g, descs));
  return FindAlgo(lt, g, descs, stream).status();
}

absl::Status RunGemm(const CublasLtRun& lt, const Gemm& g, cudaStream_t stream) {
  GemmDescs descs;
  SPW_RETURN_IF_ERROR(MakeDescs(g, descs));
  SPW_ASSIGN_OR_RETURN(const cublasLtMatmulAlgo_t algo, FindAlgo(lt, g, descs, stream));
  return Launch(lt, g, descs, algo, g.d, stream);
}

// Partial sums of the bias gradient (enough for 63 row chunks of OC = 4096) and its counters.
constexpr size_t kBiasScratchFloats = size_t{1} << 18;

// dbias += column sums of dout; with bf16_copy (may be null), dout's bf16 copy in the same pass.
absl::Status BiasGradient(float* dbias, const float* dout, int N, int OC, float* scratch,
                          uint16_t* bf16_copy, cudaStream_t stream) {
  SPW_CUDA_CHECK(
      LaunchBiasGradient(dbias, dout, N, OC, scratch, kBiasScratchFloats, bf16_copy, stream));
  return absl::OkStatus();
}

std::string ShapeString(int N, int C, int OC) {
  return absl::StrCat("(N=", N, ", C=", C, ", OC=", OC, ")");
}

}  // namespace

absl::StatusOr<std::unique_ptr<CublasLtMatmul>> CublasLtMatmul::Create(size_t workspace_bytes) {
  std::unique_ptr<CublasLtMatmul> matmul(new CublasLtMatmul());
  CublasLtRun& lt = matmul->lt_;
  SPW_CUBLAS_CHECK(cublasLtCreate(&lt.handle));
  if (workspace_bytes > 0) SPW_CUDA_CHECK(cudaMalloc(&lt.workspace, workspace_bytes));
  lt.workspace_bytes = workspace_bytes;
  SPW_CUDA_CHECK(cudaMalloc(&matmul->bias_scratch_, kBiasScratchFloats * sizeof(float)));
  SPW_CUDA_CHECK(cudaMemset(matmul->bias_scratch_, 0, kBiasScratchFloats * sizeof(float)));
  return matmul;
}

CublasLtMatmul::~CublasLtMatmul() {
  if (lt_.handle != nullptr) {
    // A later handle may get the same address: forget this one's algorithms.
    const auto id = static_cast<int64_t>(reinterpret_cast<uintptr_t>(lt_.handle));
    AlgoCache& cache = Cache();
    {
      std::lock_guard<std::mutex> lock(cache.mu);
      for (auto it = cache.algos.begin(); it != cache.algos.end();) {
        it = it->first[0] == id ? cache.algos.erase(it) : std::next(it);
      }
    }
    cublasLtDestroy(lt_.handle);
  }
  cudaFree(lt_.workspace);
  cudaFree(bias_scratch_);
}

absl::StatusOr<const float*> CublasLtMatmul::Widen(DeviceScratch& into, const uint16_t* x,
                                                   size_t elements, cudaStream_t stream) {
  SPW_ASSIGN_OR_RETURN(float* wide, into.Get<float>(elements, stream));
  SPW_CUDA_CHECK(LaunchBf16ToFloat(wide, x, elements, stream));
  return wide;
}

bool CublasLtMatmul::Bf16Copies(int N, int C, int OC) const {
  return compute_ == CUBLAS_COMPUTE_32F_FAST_16BF && N % 8 == 0 && C % 8 == 0 && OC % 8 == 0;
}

absl::StatusOr<bool> CublasLtMatmul::ForwardBf16(float* out, Input inp, MatmulParam weight,
                                                 const float* bias, const float* residual, int N,
                                                 int C, int OC, cudaStream_t stream) {
  const size_t w_elems = weight.b16 != nullptr ? 0 : MatmulCopySlot(static_cast<size_t>(OC) * C);
  const size_t x_elems = inp.b16 != nullptr ? 0 : static_cast<size_t>(N) * C;
  SPW_ASSIGN_OR_RETURN(uint16_t * copies, bf16_.Get<uint16_t>(w_elems + x_elems, stream));
  const uint16_t* w16 = weight.b16 != nullptr ? weight.b16 : copies;
  const uint16_t* x16 = inp.b16 != nullptr ? inp.b16 : copies + w_elems;
  Gemm g{CUBLAS_OP_T, CUBLAS_OP_N,
         /*m=*/OC,    /*n=*/N,
         /*k=*/C,     w16,
         /*lda=*/C,   x16,
         /*ldb=*/C,   out,
         /*ldd=*/OC,  residual != nullptr ? 1.0f : 0.0f,
         bias,        CUBLAS_COMPUTE_32F};
  g.ab_type = CUDA_R_16BF;
  g.c = residual;
  const std::string shape = ShapeString(N, C, OC);
  absl::Status status = Prepare(lt_, g, stream);
  if (absl::IsNotFound(status)) return false;
  SPW_RETURN_IF_ERROR(Annotate(status, absl::StrCat("MatmulForward bf16 ", shape)));
  if (weight.b16 == nullptr) {
    SPW_CUDA_CHECK(LaunchToBf16(copies, weight.f32, static_cast<size_t>(OC) * C, stream));
  }
  if (inp.b16 == nullptr) SPW_CUDA_CHECK(LaunchToBf16(copies + w_elems, inp.f32, x_elems, stream));
  status = RunGemm(lt_, g, stream);
  SPW_RETURN_IF_ERROR(Annotate(status, absl::StrCat("MatmulForward bf16 ", shape)));
  return true;
}

absl::Status CublasLtMatmul::Forward(float* out, const float* inp, MatmulParam weight,
                                     const float* bias, const float* residual, int N, int C, int OC,
                                     cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return absl::OkStatus();
  if (Bf16Copies(N, C, OC)) {
    SPW_ASSIGN_OR_RETURN(const bool done,
                         ForwardBf16(out, {.f32 = inp}, weight, bias, residual, N, C, OC, stream));
    if (done) return absl::OkStatus();
  }
  // out_cm (OC,N) = W_cm (C,OC)^T @ inp_cm (C,N) + bias (OC) per column.
  Gemm g{CUBLAS_OP_T, CUBLAS_OP_N, /*m=*/OC,   /*n=*/N,
         /*k=*/C,     weight.f32,  /*lda=*/C,  inp,
         /*ldb=*/C,   out,         /*ldd=*/OC, residual != nullptr ? 1.0f : 0.0f,
         bias,        compute_};
  g.c = residual;
  return Annotate(RunGemm(lt_, g, stream), absl::StrCat("MatmulForward ", ShapeString(N, C, OC)));
}

absl::Status CublasLtMatmul::Backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                      const float* inp, MatmulParam weight, int N, int C, int OC,
                                      cudaStream_t stream) {
  if (N <= 0 || C <= 0 || OC <= 0) return absl::OkStatus();
  if (Bf16Copies(N, C, OC)) {
    SPW_ASSIGN_OR_RETURN(const bool done, BackwardBf16({.f32 = dinp}, dweight, dbias, {.f32 = dout},
                                                       {.f32 = inp}, weight, N, C, OC, stream));
    if (done) return absl::OkStatus();  // the bias gradient included
  }
  SPW_RETURN_IF_ERROR(BackwardGemms(dinp, dweight, dout, inp, weight.f32, N, C, OC, stream));
  // cuBLASLt's BGRAD epilogues overwrite; the contract accumulates.
  if (dbias == nullptr) return absl::OkStatus();
  return Annotate(BiasGradient(dbias, dout, N, OC, bias_scratch_, nullptr, stream),
                  absl::StrCat("MatmulBackward dbias ", ShapeString(N, C, OC)));
}

absl::StatusOr<bool> CublasLtMatmul::BackwardBf16(Output dinp, float* dweight, float* dbias,
                                                  Input dout, Input inp, MatmulParam weight, int N,
                                                  int C, int OC, cudaStream_t stream,
                                                  const uint16_t* gelu_pre) {
  const std::string shape = ShapeString(N, C, OC);
  const size_t w_elems = weight.b16 != nullptr ? 0 : MatmulCopySlot(static_cast<size_t>(OC) * C);
  const size_t d_elems = dout.b16 != nullptr ? 0 : MatmulCopySlot(static_cast<size_t>(N) * OC);
  const size_t x_elems = inp.b16 != nullptr ? 0 : static_cast<size_t>(N) * C;
  uint16_t* copies = nullptr;
  if (w_elems + d_elems + x_elems > 0) {
    SPW_ASSIGN_OR_RETURN(copies, bf16_.Get<uint16_t>(w_elems + d_elems + x_elems, stream));
  }
  const uint16_t* w16 = weight.b16 != nullptr ? weight.b16 : copies;
  uint16_t* d_copy = dout.b16 != nullptr ? nullptr : copies + w_elems;
  const uint16_t* d16 = dout.b16 != nullptr ? dout.b16 : d_copy;
  const uint16_t* x16 = inp.b16 != nullptr ? inp.b16 : copies + w_elems + d_elems;
  void* dinp_d = dinp.b16 != nullptr ? static_cast<void*>(dinp.b16) : dinp.f32;
  Gemm g_inp{CUBLAS_OP_N, CUBLAS_OP_N, /*m=*/C,   /*n=*/N,       /*k=*/OC, w16,
             /*lda=*/C,   d16,
             /*ldb=*/OC,  dinp_d,      /*ldd=*/C, /*beta=*/0.0f, nullptr,  CUBLAS_COMPUTE_32F};
  g_inp.ab_type = CUDA_R_16BF;
  if (dinp.b16 != nullptr) g_inp.d_type = CUDA_R_16BF;
  if (gelu_pre != nullptr) {
    g_inp.epilogue = CUBLASLT_EPILOGUE_DGELU;
    g_inp.aux = gelu_pre;
  }
  Gemm g_weight{CUBLAS_OP_N, CUBLAS_OP_T, /*m=*/C,   /*n=*/OC,      /*k=*/N, x16,
                /*lda=*/C,   d16,
                /*ldb=*/OC,  dweight,     /*ldd=*/C, /*beta=*/1.0f, nullptr, CUBLAS_COMPUTE_32F};
  g_weight.ab_type = CUDA_R_16BF;
  // Both GEMMs' algorithms are looked up before anything runs, so that a shape cuBLASLt has no
  // bf16 algorithm for falls back whole (neither gradient added twice, no copies wasted).
  for (const Gemm* g : {&g_inp, &g_weight}) {
    absl::Status status = Prepare(lt_, *g, stream);
    if (absl::IsNotFound(status)) return false;
    SPW_RETURN_IF_ERROR(Annotate(status, absl::StrCat("MatmulBackward bf16 ", shape)));
  }
  if (weight.b16 == nullptr) {
    SPW_CUDA_CHECK(LaunchToBf16(copies, weight.f32, static_cast<size_t>(OC) * C, stream));
  }
  if (dout.b16 != nullptr) {
    if (dbias != nullptr && dout.sums != nullptr) {
      SPW_CUDA_CHECK(LaunchAccumulate(dbias, dout.sums, OC, stream));
    } else if (dbias != nullptr) {
      SPW_CUDA_CHECK(LaunchBiasGradientBf16(dbias, dout.b16, N, OC, bias_scratch_,
                                            kBiasScratchFloats, stream));
    }
  } else if (dbias != nullptr) {
    SPW_RETURN_IF_ERROR(
        Annotate(BiasGradient(dbias, dout.f32, N, OC, bias_scratch_, d_copy, stream),
                 absl::StrCat("MatmulBackward dbias ", shape)));
  } else {
    SPW_CUDA_CHECK(LaunchToBf16(d_copy, dout.f32, static_cast<size_t>(N) * OC, stream));
  }
  if (inp.b16 == nullptr) {
    SPW_CUDA_CHECK(LaunchToBf16(copies + w_elems + d_elems, inp.f32, x_elems, stream));
  }
  SPW_RETURN_IF_ERROR(
      Annotate(RunGemm(lt_, g_inp, stream), absl::StrCat("MatmulBackward bf16 dinp ", shape)));
  SPW_RETURN_IF_ERROR(Annotate(RunGemm(lt_, g_weight, stream),
                               absl::StrCat("MatmulBackward bf16 dweight ", shape)));
  return true;
}

absl::Status CublasLtMatmul::GeluBackwardBf16(uint16_t* dpre, float* dweight, float* dbias,
                                              MatmulDout dout, const uint16_t* h,
                                              const uint16_t* pre, MatmulParam weight, int N, int C,
                                              int OC, cudaStream_t stream) {
  if (N <= 0 || C <= 0 || OC <= 0) return absl::OkStatus();
  if (Bf16Copies(N, C, OC)) {
    SPW_ASSIGN_OR_RETURN(const bool done,
                         BackwardBf16({.b16 = dpre}, dweight, dbias, Input::Of(dout), {.b16 = h},
                                      weight, N, C, OC, stream, pre));
    if (done) return absl::OkStatus();
  }
  SPW_RETURN_IF_ERROR(
      BackwardBf16Input(dpre, dweight, dbias, dout.f32, h, weight, N, C, OC, stream));
  SPW_CUDA_CHECK(LaunchGeluBackwardBf16(dpre, pre, dpre, static_cast<size_t>(N) * C, stream));
  return absl::OkStatus();
}

absl::Status CublasLtMatmul::ForwardBf16Input(float* out, const uint16_t* inp, MatmulParam weight,
                                              const float* bias, const float* residual, int N,
                                              int C, int OC, cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return absl::OkStatus();
  if (Bf16Copies(N, C, OC)) {
    SPW_ASSIGN_OR_RETURN(const bool done,
                         ForwardBf16(out, {.b16 = inp}, weight, bias, residual, N, C, OC, stream));
    if (done) return absl::OkStatus();
  }
  SPW_ASSIGN_OR_RETURN(const float* wide, Widen(widened_, inp, static_cast<size_t>(N) * C, stream));
  return Forward(out, wide, weight, bias, residual, N, C, OC, stream);
}

absl::Status CublasLtMatmul::BackwardBf16Input(uint16_t* dinp, float* dweight, float* dbias,
                                               MatmulDout dout, const uint16_t* inp,
                                               MatmulParam weight, int N, int C, int OC,
                                               cudaStream_t stream) {
  if (N <= 0 || C <= 0 || OC <= 0) return absl::OkStatus();
  if (Bf16Copies(N, C, OC)) {
    SPW_ASSIGN_OR_RETURN(const bool done,
                         BackwardBf16({.b16 = dinp}, dweight, dbias, Input::Of(dout), {.b16 = inp},
                                      weight, N, C, OC, stream));
    if (done) return absl::OkStatus();
  }
  return BackwardWidened(dinp, dweight, dbias, dout.f32, inp, weight, N, C, OC, stream);
}

absl::Status CublasLtMatmul::BackwardBf16Grad(uint16_t* dinp, float* dweight, float* dbias,
                                              const uint16_t* dout, const uint16_t* inp,
                                              MatmulParam weight, int N, int C, int OC,
                                              cudaStream_t stream) {
  if (N <= 0 || C <= 0 || OC <= 0) return absl::OkStatus();
  if (Bf16Copies(N, C, OC)) {
    SPW_ASSIGN_OR_RETURN(const bool done, BackwardBf16({.b16 = dinp}, dweight, dbias, {.b16 = dout},
                                                       {.b16 = inp}, weight, N, C, OC, stream));
    if (done) return absl::OkStatus();
  }
  SPW_ASSIGN_OR_RETURN(const float* wide_dout,
                       Widen(widened_dout_, dout, static_cast<size_t>(N) * OC, stream));
  return BackwardWidened(dinp, dweight, dbias, wide_dout, inp, weight, N, C, OC, stream);
}

absl::Status CublasLtMatmul::BackwardWidened(uint16_t* dinp, float* dweight, float* dbias,
                                             const float* dout, const uint16_t* inp,
                                             MatmulParam weight, int N, int C, int OC,
                                             cudaStream_t stream) {
  const size_t elements = static_cast<size_t>(N) * C;
  SPW_ASSIGN_OR_RETURN(float* dinp32, out32_.Get<float>(elements, stream));
  SPW_ASSIGN_OR_RETURN(const float* wide, Widen(widened_, inp, elements, stream));
  SPW_RETURN_IF_ERROR(Backward(dinp32, dweight, dbias, dout, wide, weight, N, C, OC, stream));
  SPW_CUDA_CHECK(LaunchToBf16(dinp, dinp32, elements, stream));
  return absl::OkStatus();
}

absl::Status CublasLtMatmul::ForwardToBf16(uint16_t* out, const uint16_t* inp, MatmulParam weight,
                                           MatmulParam bias, int N, int C, int OC,
                                           cudaStream_t stream) {
  return RoundedForward(out, nullptr, inp, weight, bias, N, C, OC, stream);
}

absl::Status CublasLtMatmul::GeluForwardToBf16(uint16_t* out, uint16_t* pre, const uint16_t* inp,
                                               MatmulParam weight, MatmulParam bias, int N, int C,
                                               int OC, cudaStream_t stream) {
  return RoundedForward(out, pre, inp, weight, bias, N, C, OC, stream);
}

absl::Status CublasLtMatmul::RoundedForward(uint16_t* out, uint16_t* pre, const uint16_t* inp,
                                            MatmulParam weight, MatmulParam bias, int N, int C,
                                            int OC, cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return absl::OkStatus();
  const size_t elements = static_cast<size_t>(N) * OC;
  // The weight's (for the bf16 GEMM only) and the bias's bf16 values: the caller's copies, or made
  // here.
  const bool bf16_gemm = Bf16Copies(N, C, OC);
  const size_t w_elems =
      weight.b16 != nullptr || !bf16_gemm ? 0 : MatmulCopySlot(static_cast<size_t>(OC) * C);
  const bool round_bias = bias.f32 != nullptr && bias.b16 == nullptr;
  uint16_t* copies = nullptr;
  if (w_elems > 0 || round_bias) {
    SPW_ASSIGN_OR_RETURN(
        copies, bf16_.Get<uint16_t>(w_elems + (round_bias ? MatmulCopySlot(OC) : 0), stream));
  }
  const uint16_t* b16 = round_bias ? copies + w_elems : bias.b16;
  if (round_bias) SPW_CUDA_CHECK(LaunchToBf16(copies + w_elems, bias.f32, OC, stream));
  if (bf16_gemm) {
    Gemm g{CUBLAS_OP_T, CUBLAS_OP_N,
           /*m=*/OC,    /*n=*/N,
           /*k=*/C,     weight.b16 != nullptr ? weight.b16 : copies,
           /*lda=*/C,   inp,
           /*ldb=*/C,   out,
           /*ldd=*/OC,  /*beta=*/0.0f,
           b16,         CUBLAS_COMPUTE_32F};
    g.ab_type = CUDA_R_16BF;
    g.d_type = CUDA_R_16BF;
    g.bias_type = CUDA_R_16BF;
    if (pre != nullptr) {
      g.epilogue = b16 != nullptr ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
      g.aux = pre;
    }
    // A refusal (no algorithm) takes the fp32 path below.
    if (Prepare(lt_, g, stream).ok()) {
      if (weight.b16 == nullptr) {
        SPW_CUDA_CHECK(LaunchToBf16(copies, weight.f32, static_cast<size_t>(OC) * C, stream));
      }
      return Annotate(RunGemm(lt_, g, stream),
                      absl::StrCat("MatmulForwardToBf16 ", ShapeString(N, C, OC)));
    }
  }
  // fp32 output with the rounded bias widened behind it, rounded after.
  const size_t out_floats = (elements + 63) / 64 * 64;
  SPW_ASSIGN_OR_RETURN(float* out32,
                       out32_.Get<float>(out_floats + (b16 != nullptr ? OC : 0), stream));
  float* bias32 = b16 != nullptr ? out32 + out_floats : nullptr;
  if (b16 != nullptr) SPW_CUDA_CHECK(LaunchBf16ToFloat(bias32, b16, OC, stream));
  SPW_RETURN_IF_ERROR(ForwardBf16Input(out32, inp, weight, bias32, nullptr, N, C, OC, stream));
  if (pre == nullptr) {
    SPW_CUDA_CHECK(LaunchToBf16(out, out32, elements, stream));
    return absl::OkStatus();
  }
  SPW_CUDA_CHECK(LaunchToBf16(pre, out32, elements, stream));
  SPW_CUDA_CHECK(LaunchGeluForwardBf16(out, pre, elements, stream));
  return absl::OkStatus();
}

absl::Status CublasLtMatmul::BackwardGemms(float* dinp, float* dweight, const float* dout,
                                           const float* inp, const float* weight, int N, int C,
                                           int OC, cudaStream_t stream) {
  const std::string shape = ShapeString(N, C, OC);
  // dinp_cm (C,N) = W_cm (C,OC) @ dout_cm (OC,N).
  const Gemm g_inp{CUBLAS_OP_N, CUBLAS_OP_N, /*m=*/C,   /*n=*/N,       /*k=*/OC, weight,
                   /*lda=*/C,   dout,
                   /*ldb=*/OC,  dinp,        /*ldd=*/C, /*beta=*/0.0f, nullptr,  compute_};
  SPW_RETURN_IF_ERROR(
      Annotate(RunGemm(lt_, g_inp, stream), absl::StrCat("MatmulBackward dinp ", shape)));
  // dW_cm (C,OC) += inp_cm (C,N) @ dout_cm (OC,N)^T.
  const Gemm g_weight{CUBLAS_OP_N, CUBLAS_OP_T, /*m=*/C,   /*n=*/OC,      /*k=*/N, inp,
                      /*lda=*/C,   dout,
                      /*ldb=*/OC,  dweight,     /*ldd=*/C, /*beta=*/1.0f, nullptr, compute_};
  return Annotate(RunGemm(lt_, g_weight, stream), absl::StrCat("MatmulBackward dweight ", shape));
}

}  // namespace spillway::kernels::cuda
