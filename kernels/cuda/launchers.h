// Launchers of the CUDA kernels behind kernels::Ops: same arguments and contracts as the op of
// the same name in kernels/ops.h (device pointers), plus the stream they are enqueued on.
// Each returns cudaGetLastError() after its launches. Plain C++ (no Abseil) so that the .cu
// files that define them stay free of host-library headers.
//
// One op family per file: kernels/cuda/<family>.cu defines its launchers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace spillway::kernels::cuda {

// elementwise.cu
cudaError_t LaunchFill(float* x, float value, size_t n, cudaStream_t stream);
cudaError_t LaunchAdd(float* out, const float* a, const float* b, size_t n, cudaStream_t stream);
cudaError_t LaunchAccumulate(float* y, const float* x, size_t n, cudaStream_t stream);

// gelu.cu
cudaError_t LaunchGeluForward(float* out, const float* inp, size_t n, cudaStream_t stream);
// The ops GeluForwardBf16 / GeluBackwardBf16: inp, out, dout and dinp are bf16 bits (out and
// dinp rounded to nearest even; dinp may alias dout).
cudaError_t LaunchGeluForwardBf16(uint16_t* out, const uint16_t* inp, size_t n,
                                  cudaStream_t stream);
cudaError_t LaunchGeluBackwardBf16(uint16_t* dinp, const uint16_t* inp, const uint16_t* dout,
                                   size_t n, cudaStream_t stream);
cudaError_t LaunchGeluBackward(float* dinp, const float* inp, const float* dout, size_t n,
                               cudaStream_t stream);

// embedding.cu
cudaError_t LaunchEmbeddingForward(float* out, const int32_t* tokens, const float* wte,
                                   const float* wpe, int B, int T, int C, cudaStream_t stream);
// The backward needs `scratch` (device, 256-byte aligned) of EmbeddingBackwardScratchBytes(B, T)
// bytes: the sort of the positions by token (embedding.cu; 0 where CUB cannot size its sort, whose
// error the launch then returns).
size_t EmbeddingBackwardScratchBytes(int B, int T);
cudaError_t LaunchEmbeddingBackward(float* dwte, float* dwpe, const float* dout,
                                    const int32_t* tokens, int B, int T, int C, void* scratch,
                                    cudaStream_t stream);

// layernorm.cu
cudaError_t LaunchLayerNormForward(float* out, float* mean, float* rstd, const float* inp,
                                   const float* weight, const float* bias, int N, int C,
                                   cudaStream_t stream);
cudaError_t LaunchLayerNormForwardBf16(uint16_t* out, float* mean, float* rstd, const float* inp,
                                       const float* weight, const float* bias, int N, int C,
                                       cudaStream_t stream);
// `scratch` (device, scratch_floats floats, may be null) holds partial sums of dweight/dbias
// over row chunks; the summation order depends only on N, C and scratch_floats.
cudaError_t LaunchLayerNormBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                                    const float* inp, const float* weight, const float* mean,
                                    const float* rstd, int N, int C, float* scratch,
                                    size_t scratch_floats, cudaStream_t stream);
// The same with dout as bf16 bits (the op LayerNormBackwardBf16), and where dinp16 and dinp_sums
// are given, round(dinp) (N,C) and dinp's column sums (C, overwritten): in the pass that writes
// dinp where it adds the parameter sums' parts (rows of C <= 2048), else by LaunchBiasGradient
// after it, on this scratch (which must then be zero when new: its tail holds that launch's
// counters, and the LayerNorm's own parts leave them alone).
cudaError_t LaunchLayerNormBackwardBf16(float* dinp, float* dweight, float* dbias,
                                        const uint16_t* dout, const float* inp, const float* weight,
                                        const float* mean, const float* rstd, int N, int C,
                                        float* scratch, size_t scratch_floats, uint16_t* dinp16,
                                        float* dinp_sums, cudaStream_t stream);

// rmsnorm.cu
cudaError_t LaunchRmsNormForward(float* out, float* rstd, const float* inp, const float* weight,
                                 float eps, int N, int C, cudaStream_t stream);
cudaError_t LaunchRmsNormBackward(float* dinp, float* dweight, const float* dout, const float* inp,
                                  const float* weight, const float* rstd, int N, int C,
                                  cudaStream_t stream);

// rope.cu
cudaError_t LaunchRopeForward(float* qkv, int B, int T, int NH, int NKV, int hs, double theta,
                              cudaStream_t stream);
cudaError_t LaunchRopeBackward(float* dqkv, int B, int T, int NH, int NKV, int hs, double theta,
                               cudaStream_t stream);

// swiglu.cu
cudaError_t LaunchSwiGluForward(float* out, const float* gu, int N, int F, cudaStream_t stream);
cudaError_t LaunchSwiGluBackward(float* dgu, const float* dout, const float* gu, int N, int F,
                                 cudaStream_t stream);

// bf16_convert.cu: out[i] = in[i] rounded to bf16 / fp16 (nearest even), as its 16 bits.
cudaError_t LaunchToBf16(uint16_t* out, const float* in, size_t n, cudaStream_t stream);
cudaError_t LaunchToFp16(uint16_t* out, const float* in, size_t n, cudaStream_t stream);
// out[i] = the bf16 in[i] as a float (exact).
cudaError_t LaunchBf16ToFloat(float* out, const uint16_t* in, size_t n, cudaStream_t stream);

// matmul_bias.cu: dbias (OC) += sum over the N rows of dout (N,OC), in a fixed order (which
// depends only on N, OC, the alignment, scratch_floats and the GPU's SM count). `scratch`
// (device, scratch_floats floats, may be null: one block per column tile) holds per-chunk partial
// sums so that many blocks share the rows, and in its last kBiasGradientCounters words the tiles'
// arrival counters, which must be zero when the scratch is new (cudaMemset) and are zero again
// after every launch. Launches sharing a scratch must be ordered (one stream). bf16_copy (N*OC, may
// be null) receives LaunchToBf16(dout) in the same pass.
constexpr size_t kBiasGradientCounters = 1024;
cudaError_t LaunchBiasGradient(float* dbias, const float* dout, int N, int OC, float* scratch,
                               size_t scratch_floats, uint16_t* bf16_copy, cudaStream_t stream);
// The same over a bf16 dout (widened exactly), in the same order.
cudaError_t LaunchBiasGradientBf16(float* dbias, const uint16_t* dout, int N, int OC,
                                   float* scratch, size_t scratch_floats, cudaStream_t stream);

// attention.cu. The backwards need `scratch` of AttentionScratchFloats(B, T, NH) floats.
size_t AttentionScratchFloats(int B, int T, int NH);
cudaError_t LaunchAttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C,
                                   int NH, cudaStream_t stream);
cudaError_t LaunchAttentionBackward(float* dqkv, const float* dout, const float* qkv,
                                    const float* out, const float* lse, int B, int T, int C, int NH,
                                    float* scratch, cudaStream_t stream);
cudaError_t LaunchGqaAttentionForward(float* out, float* lse, const float* qkv, int B, int T,
                                      int NH, int NKV, int hs, cudaStream_t stream);
cudaError_t LaunchGqaAttentionBackward(float* dqkv, const float* dout, const float* qkv,
                                       const float* out, const float* lse, int B, int T, int NH,
                                       int NKV, int hs, float* scratch, cudaStream_t stream);

// attention_tc.cu: the same attention contracts, on tensor cores from 16-bit operands (fp16 or
// else bf16) with fp32 softmax and accumulation, for head sizes 64 and 128
// (TensorCoreAttentionSupported) and 16-byte aligned buffers. Both need `scratch` (device,
// 256-byte aligned) of TensorCoreAttentionScratchBytes bytes: the 16-bit copies of qkv and dout
// the kernels read, and the backward's row sums (layout: kernels/attention_scratch.h); with
// sixteen_bit_inputs (qkv16 given, and a bf16 dout for the backward), the row sums alone. Given
// qkv16 (16-bit values of the kernels' type, may be null) they read it instead of converting qkv
// (then unused: may be null). The output is fp32 (out) or, at bf16 only, bf16 (out16, rounded to
// nearest even; the backward then reads it as such): exactly one of them is given; the backward's
// dout and dqkv likewise, fp32 (dout, dqkv) with out or bf16 (dout16 read as it is, dqkv16 rounded)
// with out16. With dqkv16, dbias ((NH+2*NKV)*hs, or null) += the column sums of dqkv16's values
// (the QKV projection's bias gradient), which the kernels take as they store dqkv16: they need
// bias_parts (device, given exactly with dbias) of TensorCoreAttentionBiasPartsFloats floats.
bool TensorCoreAttentionSupported(int hs);
size_t TensorCoreAttentionScratchBytes(int B, int T, int NH, int NKV, int hs,
                                       bool sixteen_bit_inputs);
cudaError_t LaunchTensorCoreAttentionForward(float* out, uint16_t* out16, float* lse,
                                             const float* qkv, const uint16_t* qkv16, int B, int T,
                                             int NH, int NKV, int hs, bool fp16, void* scratch,
                                             cudaStream_t stream);
size_t TensorCoreAttentionBiasPartsFloats(int B, int T, int NH, int NKV, int hs);
cudaError_t LaunchTensorCoreAttentionBackward(float* dqkv, uint16_t* dqkv16, const float* dout,
                                              const uint16_t* dout16, const float* qkv,
                                              const uint16_t* qkv16, const float* out,
                                              const uint16_t* out16, const float* lse, int B, int T,
                                              int NH, int NKV, int hs, bool fp16, void* scratch,
                                              float* dbias, float* bias_parts, cudaStream_t stream);

// cross_entropy.cu
cudaError_t LaunchCrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V,
                               int Vp, float dlogits_scale, cudaStream_t stream);
// The op CrossEntropyBf16: logits as bf16 bits, the gradient written over them rounded.
cudaError_t LaunchCrossEntropyBf16(float* losses, uint16_t* logits, const int32_t* targets, int N,
                                   int V, int Vp, float dlogits_scale, cudaStream_t stream);

// sum_squares.cu: *out (device) += sum of x^2 in double, in a fixed order; LaunchAddMean:
// *out += double(float(sum of x / divisor)) (nothing when divisor is 0). Both need `scratch` of
// SumSquaresScratchDoubles(n) doubles.
size_t SumSquaresScratchDoubles(size_t n);
cudaError_t LaunchAddSumSquares(double* out, const float* x, size_t n, double* scratch,
                                cudaStream_t stream);
cudaError_t LaunchAddMean(double* out, const float* x, size_t n, size_t divisor, double* scratch,
                          cudaStream_t stream);
// LaunchAddSumSquares over `count` (at most kSumPartsMax) parts, in order: part k is the
// parts[k].n floats at parts[k].x (device memory; the list is host memory, passed by value to
// the kernels). Two launches; needs SumSquaresPartsScratchDoubles(parts, count) doubles of
// scratch.
struct SumPart {
  const float* x;
  size_t n;
};
inline constexpr size_t kSumPartsMax = 160;
size_t SumSquaresPartsScratchDoubles(const SumPart* parts, size_t count);
cudaError_t LaunchAddSumSquaresParts(double* out, const SumPart* parts, size_t count,
                                     double* scratch, cudaStream_t stream);
// *out += values[0], += values[1], ... in order (one thread: n is a count of tensors, not values).
cudaError_t LaunchAddInOrder(double* out, const double* values, size_t n, cudaStream_t stream);

// adamw.cu: the AdamW step of kernels/ops.h, with its parameters passed by value; the Parts form
// over `count` (at most kAdamWPartsMax) ranges [ranges[2k], ranges[2k+1]) of the four arrays,
// part k with weight decay weight_decays[k] (host memory), in one launch, storing the updated
// parameters in param_bf16 too unless it is null.
inline constexpr size_t kAdamWPartsMax = 16;
cudaError_t LaunchAdamWParts(float* param, uint16_t* param_bf16, const float* grad, float* m,
                             float* v, const size_t* ranges, const float* weight_decays,
                             size_t count, float lr, float beta1, float beta2, float eps,
                             int64_t step, float grad_scale, cudaStream_t stream);
cudaError_t LaunchAdamW(float* param, const float* grad, float* m, float* v, size_t n, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step,
                        float grad_scale, cudaStream_t stream);

}  // namespace spillway::kernels::cuda
