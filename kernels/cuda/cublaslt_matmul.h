// Row-major fp32 GEMMs of the matmul op through cuBLASLt.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <memory>

#include "absl/status/statusor.h"

namespace spillway::kernels::cuda {

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

  // out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be null.
  absl::Status Forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                       int C, int OC, cudaStream_t stream);
  // dinp (N,C) += dout @ weight;  dweight (OC,C) += dout^T @ inp;  dbias (OC) += column sums of
  // dout (dbias may be null).
  absl::Status Backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, int N, int C, int OC,
                        cudaStream_t stream);

 private:
  CublasLtMatmul() = default;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  float* bias_scratch_ = nullptr;  // the bias gradient's partial sums (matmul_bias.cu)
  cublasComputeType_t compute_ = CUBLAS_COMPUTE_32F;
};

}  // namespace spillway::kernels::cuda
