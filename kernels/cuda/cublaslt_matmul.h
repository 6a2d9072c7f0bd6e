// Row-major GEMMs of the matmul ops through cuBLASLt: fp32 buffers, or a bf16 input.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/cuda/device_scratch.h"
#include "kernels/ops.h"

namespace spillway::kernels::cuda {

// What every GEMM of a CublasLtMatmul runs with: the handle, its workspace, and how many of
// cuBLASLt's heuristic algorithms a GEMM on bf16 operands times per problem, the fastest then
// kept (1: its first). Other GEMMs take its first: among the candidates for cuBLASLt's own
// FAST_16BF conversion some multiply in fp32, which would not be the precision asked for.
struct CublasLtRun {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  int candidates = 1;
};

class CublasLtMatmul {
 public:
  // Creates the cuBLASLt handle and a workspace of `workspace_bytes` on the current device.
  static absl::StatusOr<std::unique_ptr<CublasLtMatmul>> Create(size_t workspace_bytes);
  ~CublasLtMatmul();
  CublasLtMatmul(const CublasLtMatmul&) = delete;
  CublasLtMatmul& operator=(const CublasLtMatmul&) = delete;

  // The compute type of every GEMM from now on: CUBLAS_COMPUTE_32F (the default; no TF32, so
  // results match the CPU reference to fp32 rounding), or CUBLAS_COMPUTE_32F_FAST_16BF /
  // _FAST_16F: tensor cores on operands converted to bf16 / fp16, fp32 accumulation.
  void set_compute_type(cublasComputeType_t compute) { compute_ = compute; }
  // How many of cuBLASLt's heuristic algorithms the GEMMs on bf16 copies time per problem, from
  // now on (CublasLtRun::candidates; 1, the default: its first). Problems already met keep theirs.
  void set_autotune_candidates(int candidates) { lt_.candidates = candidates; }

  // out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC) + residual (N,OC); bias and residual
  // may be null (residual: cuBLASLt's beta * C with C = residual, so it must not alias out).
  // Where the products run on bf16 copies (Bf16Copies), weight.b16, if set, is read as that copy.
  absl::Status Forward(float* out, const float* inp, MatmulParam weight, const float* bias,
                       const float* residual, int N, int C, int OC, cudaStream_t stream);
  // dinp (N,C) = dout @ weight (overwritten);  dweight (OC,C) += dout^T @ inp;  dbias (OC) +=
  // column sums of dout (dbias may be null).
  absl::Status Backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, MatmulParam weight, int N, int C, int OC,
                        cudaStream_t stream);
  // Forward and Backward with inp given as bf16 bits (Ops::MatmulForwardBf16 and
  // MatmulBackwardBf16, whose dinp is bf16 too): the GEMMs read it as it is, and the dinp GEMM
  // writes bf16, where they run on bf16 copies (Bf16Copies); otherwise inp is widened to fp32
  // first, into a buffer grown to the largest such input (outside the memory plan), and dinp is
  // computed in fp32 (in out32_) and rounded after.
  absl::Status ForwardBf16Input(float* out, const uint16_t* inp, MatmulParam weight,
                                const float* bias, const float* residual, int N, int C, int OC,
                                cudaStream_t stream);
  absl::Status BackwardBf16Input(uint16_t* dinp, float* dweight, float* dbias, MatmulDout dout,
                                 const uint16_t* inp, MatmulParam weight, int N, int C, int OC,
                                 cudaStream_t stream);
  // BackwardBf16Input with dout as bf16 bits too (Ops::MatmulBackwardBf16Grad): read as it is,
  // the bias gradient summing it widened; the fallback widens it into a buffer of its own.
  absl::Status BackwardBf16Grad(uint16_t* dinp, float* dweight, float* dbias, const uint16_t* dout,
                                const uint16_t* inp, MatmulParam weight, int N, int C, int OC,
                                cudaStream_t stream);
  // out (N,OC) = inp @ weight^T + round(bias) rounded to bf16 (Ops::MatmulForwardToBf16): the
  // GEMM writes bf16 and adds the bf16 bias where it runs on bf16 copies; otherwise it writes fp32
  // to a buffer grown to the largest such output (outside the memory plan), rounded after.
  absl::Status ForwardToBf16(uint16_t* out, const uint16_t* inp, MatmulParam weight,
                             MatmulParam bias, int N, int C, int OC, cudaStream_t stream);
  // ForwardToBf16 through a GELU (Ops::MatmulGeluForwardToBf16): pre gets the rounded sum, out
  // its GELU, from cuBLASLt's GELU epilogue on the fp32 sum where the GEMM runs on bf16 copies;
  // otherwise the GELU kernel on pre.
  absl::Status GeluForwardToBf16(uint16_t* out, uint16_t* pre, const uint16_t* inp,
                                 MatmulParam weight, MatmulParam bias, int N, int C, int OC,
                                 cudaStream_t stream);
  // The backward of out = gelu(pre) @ weight^T + bias (Ops::MatmulGeluBackwardBf16): dpre =
  // gelu'(pre) * (dout @ weight) rounded to bf16, dweight += dout^T @ h, dbias += column sums of
  // dout. Where the GEMMs run on bf16 copies the dinp GEMM's epilogue applies the GELU's gradient
  // to its fp32 sums; otherwise BackwardBf16Input, then the GELU backward kernel.
  absl::Status GeluBackwardBf16(uint16_t* dpre, float* dweight, float* dbias, MatmulDout dout,
                                const uint16_t* h, const uint16_t* pre, MatmulParam weight, int N,
                                int C, int OC, cudaStream_t stream);

 private:
  CublasLtMatmul() = default;

  // Whether the products run on bf16 copies of the operands (ToBf16, round to nearest even)
  // rather than cuBLASLt's FAST_16BF conversion inside the GEMM: bf16 mode and every dimension
  // a multiple of 8 (16-byte rows for the bf16 kernels).
  bool Bf16Copies(int N, int C, int OC) const;
  // The input of the bf16 GEMMs: fp32 values to copy (f32), or bf16 bits to read as they are
  // (b16); exactly one is set. A dout given as b16 may come with `sums`, its fp32 original's
  // column sums (MatmulDout), which the bias gradient then adds instead of summing b16.
  struct Input {
    const float* f32 = nullptr;
    const uint16_t* b16 = nullptr;
    const float* sums = nullptr;

    // A MatmulDout as such an input: its bf16 copy with the sums where it has them.
    static Input Of(const MatmulDout& d) {
      return d.b16 != nullptr ? Input{.b16 = d.b16, .sums = d.sums} : Input{.f32 = d.f32};
    }
  };
  // The dinp of the bf16 backward: fp32 (f32) or rounded to bf16 (b16); exactly one is set.
  struct Output {
    float* f32 = nullptr;
    uint16_t* b16 = nullptr;
  };
  // The forward GEMM on bf16 copies; false (nothing written) when cuBLASLt has no algorithm.
  absl::StatusOr<bool> ForwardBf16(float* out, Input inp, MatmulParam weight, const float* bias,
                                   const float* residual, int N, int C, int OC,
                                   cudaStream_t stream);
  // The backward on bf16 copies: both GEMMs, and the bias gradient (dbias may be null) in the
  // pass that copies an fp32 dout (or sums a bf16 one, or adds its given sums); false (nothing
  // added) when cuBLASLt has no algorithm. With gelu_pre (bf16, may be null), dinp (bf16) is the
  // gradient through a GELU of gelu_pre (GeluBackwardBf16).
  absl::StatusOr<bool> BackwardBf16(Output dinp, float* dweight, float* dbias, Input dout,
                                    Input inp, MatmulParam weight, int N, int C, int OC,
                                    cudaStream_t stream, const uint16_t* gelu_pre = nullptr);
  // ForwardToBf16, or GeluForwardToBf16 where pre is set.
  absl::Status RoundedForward(uint16_t* out, uint16_t* pre, const uint16_t* inp, MatmulParam weight,
                              MatmulParam bias, int N, int C, int OC, cudaStream_t stream);
  // The fallback of the bf16-dinp backwards: Backward on the widened inp, dinp computed in out32_
  // and rounded into dinp.
  absl::Status BackwardWidened(uint16_t* dinp, float* dweight, float* dbias, const float* dout,
                               const uint16_t* inp, MatmulParam weight, int N, int C, int OC,
                               cudaStream_t stream);
  // x widened to fp32 into `into` (its `elements` values).
  absl::StatusOr<const float*> Widen(DeviceScratch& into, const uint16_t* x, size_t elements,
                                     cudaStream_t stream);
  // The two backward GEMMs on the fp32 buffers, at compute_.
  absl::Status BackwardGemms(float* dinp, float* dweight, const float* dout, const float* inp,
                             const float* weight, int N, int C, int OC, cudaStream_t stream);

  CublasLtRun lt_;
  float* bias_scratch_ = nullptr;  // the bias gradient's partial sums (matmul_bias.cu)
  DeviceScratch bf16_;             // bf16 operand copies of the GEMM being issued
  DeviceScratch widened_;          // a bf16 input widened to fp32 (the bf16-input GEMMs' fallback)
  DeviceScratch widened_dout_;     // and a bf16 dout (BackwardBf16Grad's fallback)
  DeviceScratch out32_;            // an fp32 output where the GEMM cannot write bf16
  cublasComputeType_t compute_ = CUBLAS_COMPUTE_32F;
};

}  // namespace spillway::kernels::cuda
