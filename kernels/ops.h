// The numeric ops of GPT-2 and Llama style transformers, behind one interface with one
// implementation per backend (kernels/cpu, kernels/cuda). The models call only these.
//
// Conventions, for every op:
//  - Pointers address memory of the backend's own tier (host for cpu, device for cuda);
//    shapes are given in the comment beside each parameter, row-major, last index fastest.
//  - B batch, T sequence length, C channels, NH heads (C % NH == 0, head size hs = C / NH),
//    NKV key/value heads (grouped-query attention), N rows (usually B*T), F MLP hidden width,
//    V vocabulary, Vp padded vocabulary (row stride of logits, Vp >= V).
//  - "+=" in a contract means the op accumulates into its output (weight gradients, so that
//    gradient accumulation over micro-batches needs no extra buffer); "=" means it overwrites.
//  - Ops run in issue order on the backend's compute stream and do not synchronise with the
//    host. Shapes are validated by the caller when buffers are planned, so ops cannot fail on
//    their arguments; an asynchronous failure (a CUDA launch error) surfaces from Synchronize().
//  - Results do not depend on the number of threads: every reduction has a fixed order, so a
//    run is bitwise reproducible on the same backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/tier.h"

namespace spillway::kernels {

struct AdamWParams {
  float lr = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: param -= lr * weight_decay * param
  int64_t step = 1;           // 1-based step count, for bias correction
  float grad_scale = 1.0f;    // the gradient used is grad * grad_scale (clipping, unscaling)
};

// How the matmul ops multiply (Ops::SetMatmulPrecision).
enum class MatmulPrecision { kFp32, kBf16, kFp16 };

// A matmul's parameter, its weight (OC,C) or a bias (OC): its fp32 values, and optionally `b16`,
// those values rounded to bf16 (to nearest even; uint16_t bits, 16-byte aligned), which the
// caller keeps (a model's weight copies) so that the matmul reads them where it uses bf16 values
// (a weight at kBf16, MatmulForwardToBf16's bias) instead of rounding them itself. Elsewhere b16
// is not read. The ops trust b16 to be round(f32): results are then bitwise those without it.
struct MatmulParam {
  MatmulParam(const float* f32, const uint16_t* b16 = nullptr)  // NOLINT: a plain fp32 tensor
      : f32(f32), b16(b16) {}
  const float* f32;
  const uint16_t* b16;
};

// The fp32 gradient (N,OC) a matmul's backward reads (the residual stream's, at bf16), with what
// the LayerNorm backward that wrote it may have written beside it (LayerNormBackwardBf16's dinp16
// and dinp_sums): `b16` = round(f32) (nearest even), which the GEMMs then read instead of rounding
// f32 again, and `sums` (OC floats) = its column sums as the bias gradient sums f32, which the
// bias gradient then adds instead of reading f32 again. Both null, or both given; results are
// bitwise those from f32 alone on the CPU.
struct MatmulDout {
  MatmulDout(const float* f32, const uint16_t* b16 = nullptr,  // NOLINT: a plain fp32 gradient
             const float* sums = nullptr)
      : f32(f32), b16(b16), sums(sums) {}
  const float* f32;
  const uint16_t* b16;
  const float* sums;
};

// Elements of one 16-bit operand copy rounded up to 128 (256 bytes), so that the next copy in
// the same buffer is aligned.
inline size_t MatmulCopySlot(size_t elements) { return (elements + 127) / 128 * 128; }

// Device bytes of the 16-bit operand copies the CUDA backend makes for one MatmulBackward (N, C,
// OC) at a 16-bit precision: weight, dout and input, the first two in slots (the forward's
// copies are smaller). Its copy buffer grows to the largest GEMM it has run, and the memory
// planner counts that (PlannedGemmCopyBytes in engine/model/model.h).
inline size_t MatmulOperandCopyBytes(int N, int C, int OC) {
  const size_t n = static_cast<size_t>(N), c = static_cast<size_t>(C), oc = static_cast<size_t>(OC);
  return sizeof(uint16_t) * (MatmulCopySlot(oc * c) + MatmulCopySlot(n * oc) + n * c);
}

// Ops recorded between Ops::BeginCapture and Ops::EndCapture, issued again as one launch.
class OpsGraph {
 public:
  virtual ~OpsGraph() = default;
  // Issues the recorded ops again on the ops' stream, with the arguments they were recorded with
  // (the same buffers and scalars; host memory they copy from is read at replay).
  virtual absl::Status Replay() = 0;
};

class Ops {
 public:
  virtual ~Ops() = default;

  virtual absl::string_view name() const = 0;

  // Waits for all issued ops; returns the first asynchronous error, if any.
  virtual absl::Status Synchronize() = 0;

  // Dense peak FLOP/s of the device for the throughput it is judged by (H100/H200: 989e12,
  // bf16 tensor cores), or 0 when unknown. Progress lines report MFU against it.
  virtual double peak_flops() const = 0;

  // The tier the op arguments live in: kHost for cpu, kDevice for cuda. Buffers the model
  // passes to ops are allocated there (offload/buffer.h).
  virtual Tier memory_tier() const = 0;

  // The stream (a cudaStream_t) GPU backends issue their work on, for communicators that order
  // collectives against it; null for host backends.
  virtual void* native_stream() { return nullptr; }

  // Graphs (CUDA graphs): the ops this thread issues between BeginCapture and EndCapture are
  // recorded, not run, and EndCapture returns them as an OpsGraph. Nothing in between may wait
  // for the device, and host memory they copy from must be page-locked. A capture that fails
  // returns its error from EndCapture and leaves the ops usable. Backends without graphs (the
  // CPU's) return Unimplemented from BeginCapture.
  virtual absl::Status BeginCapture() {
    return absl::UnimplementedError(absl::StrCat("the ", name(), " backend has no graphs"));
  }
  virtual absl::StatusOr<std::unique_ptr<OpsGraph>> EndCapture() {
    return absl::FailedPreconditionError("EndCapture without BeginCapture");
  }

  // Copies in issue order with the ops: host memory <-> the backend's memory. The host side
  // must stay valid, and CopyToHost's result be read, only after Synchronize(). The backend side
  // may also be host memory (offloaded Unit state standing in for the backend's).
  virtual void CopyToBackend(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void CopyToHost(void* host_dst, const void* src, size_t bytes) = 0;

  // Copies on a copy stream that runs beside the compute stream (GPU backends), for the
  // offloaded state. Each copy starts after every op issued before it and returns a ticket
  // (increasing). WaitCopies(t) blocks the calling thread (the issuing one, or another: the
  // offloaded optimizer's worker) until every copy up to ticket t has landed, and returns the
  // first copy error. ComputeAfterCopies(t) makes every later op wait for the copies up to ticket
  // t, without a host wait (t <= 0: none). TakeCopySeconds() returns the copy streams' busy time
  // (added up) of the copies that have landed since the last call. Host backends copy at once
  // (these defaults).
  virtual int64_t CopyToHostAsync(void* host_dst, const void* src, size_t bytes) {
    CopyToHost(host_dst, src, bytes);
    return 0;
  }
  virtual int64_t CopyToBackendAsync(void* dst, const void* host_src, size_t bytes) {
    CopyToBackend(dst, host_src, bytes);
    return 0;
  }
  // A copy to the backend on an upload stream of its own, which does not wait for earlier ops
  // (the caller knows that nothing issued reads or writes dst any more) nor for earlier copies.
  // May be called from any thread. Its ticket counts for WaitCopies and ComputeAfterCopies like
  // the others': "up to ticket t" then means on both streams.
  virtual int64_t UploadAsync(void* dst, const void* host_src, size_t bytes) {
    CopyToBackend(dst, host_src, bytes);
    return 0;
  }
  virtual absl::Status WaitCopies(int64_t ticket) { return absl::OkStatus(); }
  // Whether every copy up to ticket t has landed (or failed), without blocking.
  virtual bool CopiesLanded(int64_t ticket) { return true; }
  virtual void ComputeAfterCopies(int64_t ticket) {}
  virtual double TakeCopySeconds() { return 0.0; }

  // x[n] = value
  virtual void Fill(float* x, float value, size_t n) = 0;

  // out (B,T,C) = wte[tokens[b,t], :] + wpe[t, :]
  // tokens (B,T) in [0, V); wte (Vp,C); wpe (maxT,C) with maxT >= T, or null: no position
  // embedding (Llama), out = wte[tokens[b,t], :].
  virtual void EmbeddingForward(float* out, const int32_t* tokens, const float* wte,
                                const float* wpe, int B, int T, int C) = 0;
  // dwte[tokens[b,t], :] += dout[b,t,:];  dwpe[t, :] += sum_b dout[b,t,:] (dwpe may be null)
  virtual void EmbeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                                 int B, int T, int C) = 0;

  // out (N,C) = (inp - mean) * rstd * weight + bias, per row; eps = 1e-5.
  // Saves mean (N) and rstd (N) = 1/sqrt(var + eps) (biased variance) for the backward.
  virtual void LayerNormForward(float* out, float* mean, float* rstd, const float* inp,
                                const float* weight, const float* bias, int N, int C) = 0;
  // dinp (N,C) += ...;  dweight (C) += ...;  dbias (C) += ...
  virtual void LayerNormBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                                 const float* inp, const float* weight, const float* mean,
                                 const float* rstd, int N, int C) = 0;

  // RMSNorm (Llama's, computed in fp32): out (N,C) = inp * rstd * weight, per row, with
  // rstd (N) = 1/sqrt(mean(inp^2) + eps) saved for the backward.
  virtual void RmsNormForward(float* out, float* rstd, const float* inp, const float* weight,
                              float eps, int N, int C) = 0;
  // dinp (N,C) += ...;  dweight (C) += sum over rows of dout * inp * rstd.
  virtual void RmsNormBackward(float* dinp, float* dweight, const float* dout, const float* inp,
                               const float* weight, const float* rstd, int N, int C) = 0;

  // The precision of MatmulForward/MatmulBackward from now on. kFp32 (the default): fp32
  // products. kBf16 / kFp16 (mixed precision): every operand value (inp, weight, dout) is first
  // rounded to bf16 / fp16 (to nearest even on the CPU, where fp16 values beyond its range
  // become infinite, which fp16 loss scaling detects; on CUDA bf16 operands are rounded to
  // nearest even too where N, C and OC are multiples of 8, otherwise cuBLASLt converts inside
  // the GEMM, within a bf16 ulp of the CPU's rounding, and an out-of-range fp16 operand does
  // not become infinite) and the products are added in fp32 (tensor cores on CUDA). The buffers
  // stay fp32; the bias and the "+=" accumulation are fp32. On CUDA the attention ops follow
  // the same setting where the head size is 64 or 128: their products (q k^T, p v and the
  // backward's) run on tensor cores from 16-bit operands, softmax and accumulation in fp32. The CPU
  // backend's attention stays fp32.
  virtual void SetMatmulPrecision(MatmulPrecision precision) = 0;
  virtual MatmulPrecision matmul_precision() const = 0;
  // Whether the GEMMs on bf16 operands time several algorithms per problem (shape, layout,
  // epilogue, alignment) the first time it runs, and keep the fastest (on CUDA: the first 8 that
  // cuBLASLt's heuristic proposes; off, the default: its first). The results stay within the same
  // rounding bounds either way, but the fastest algorithm, and so the low bits of a result, may
  // differ between processes: off, a run repeats bitwise. No effect on the CPU backend.
  virtual void SetMatmulAutotune(bool on) {}

  // out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC) + residual (N,OC): a block's residual
  // add, fused into the GEMM on CUDA. bias and residual may be null; residual must not alias out.
  virtual void MatmulForward(float* out, const float* inp, MatmulParam weight, const float* bias,
                             const float* residual, int N, int C, int OC) = 0;
  // dinp (N,C) = dout (N,OC) @ weight (OC,C) (overwritten: no fill first);
  // dweight (OC,C) += dout^T @ inp;  dbias (OC) += sum over rows of dout. dbias may be null.
  virtual void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                              const float* inp, MatmulParam weight, int N, int C, int OC) = 0;

  // bf16 matmul inputs. At kBf16 a matmul rounds its input to bf16 before multiplying, so an
  // activation that only feeds matmuls (a LayerNorm's output) can be kept as those bf16
  // values (uint16_t bits, rounded to nearest even): half the bytes written and read, and no
  // rounding pass before the GEMM. Each op is its fp32 namesake with that output or input: at
  // kBf16, MatmulForwardBf16(round(x)) gives MatmulForward(x) and LayerNormForwardBf16 gives
  // round(LayerNormForward), bitwise on the CPU. On CUDA, shapes whose N, C and OC are not all
  // multiples of 8 widen the input to fp32 first (into a buffer grown beyond the memory plan);
  // the models use these ops only where they are.
  virtual void LayerNormForwardBf16(uint16_t* out, float* mean, float* rstd, const float* inp,
                                    const float* weight, const float* bias, int N, int C) = 0;
  virtual void MatmulForwardBf16(float* out, const uint16_t* inp, MatmulParam weight,
                                 const float* bias, const float* residual, int N, int C,
                                 int OC) = 0;
  // The backward writes dinp rounded to bf16, which only bf16 readers take (the attention's and
  // the LayerNorm's backwards below): MatmulBackward's dinp, rounded once.
  virtual void MatmulBackwardBf16(uint16_t* dinp, float* dweight, float* dbias, MatmulDout dout,
                                  const uint16_t* inp, MatmulParam weight, int N, int C,
                                  int OC) = 0;
  // The QKV projection (and the head), whose outputs only the attention (the cross-entropy)
  // reads: out (N,OC) = inp @ weight^T + round(bias), summed in fp32 and rounded once to bf16. The
  // bias is rounded to bf16 too (as PyTorch's autocast casts it), which lets cuBLASLt add it in
  // the GEMM's epilogue (it takes no fp32 bias with a bf16 output). bias may be null.
  virtual void MatmulForwardToBf16(uint16_t* out, const uint16_t* inp, MatmulParam weight,
                                   MatmulParam bias, int N, int C, int OC) = 0;
  // The MLP's up-projection and GELU in one: with x = inp @ weight^T + round(bias) summed in fp32
  // (as MatmulForwardToBf16's), pre = round(x) and out = round(gelu(x)), both bf16 (CUDA: from
  // cuBLASLt's GELU epilogue; where the GEMM cannot run on bf16 copies, the GELU of pre).
  virtual void MatmulGeluForwardToBf16(uint16_t* out, uint16_t* pre, const uint16_t* inp,
                                       MatmulParam weight, MatmulParam bias, int N, int C,
                                       int OC) = 0;
  // The down-projection's backward through that GELU, h = gelu(pre) (N,C) being its input:
  // dpre (N,C) = round(gelu'(pre) * (dout @ weight)) as bf16, the product in fp32 unrounded (CUDA:
  // cuBLASLt's GELU-gradient epilogue; where the GEMM cannot run on bf16 copies, the product
  // rounded first); dweight (OC,C) += dout^T @ h; dbias (OC) += column sums of dout.
  virtual void MatmulGeluBackwardBf16(uint16_t* dpre, float* dweight, float* dbias, MatmulDout dout,
                                      const uint16_t* h, const uint16_t* pre, MatmulParam weight,
                                      int N, int C, int OC) = 0;
  // MatmulBackwardBf16 with dout as bf16 bits too: MatmulBackwardBf16 on the widened dout,
  // bitwise on the CPU. At kBf16 the GEMMs round dout anyway; the bias gradient sums the rounded
  // values (as PyTorch's autocast does), in fp32.
  virtual void MatmulBackwardBf16Grad(uint16_t* dinp, float* dweight, float* dbias,
                                      const uint16_t* dout, const uint16_t* inp, MatmulParam weight,
                                      int N, int C, int OC) = 0;
  // LayerNormBackward with dout as bf16 bits (a projection's dinp, from MatmulBackwardBf16Grad):
  // LayerNormBackward on the widened dout, bitwise on the CPU; dinp stays fp32 (the residual
  // stream's gradient). With dinp16 and dinp_sums (both null, or both given) it also writes what
  // the next matmul backward reads of the resulting dinp (MatmulDout): dinp16 (N,C) =
  // round(dinp), dinp_sums (C) = dinp's column sums (overwritten), in the same pass on CUDA.
  virtual void LayerNormBackwardBf16(float* dinp, float* dweight, float* dbias,
                                     const uint16_t* dout, const float* inp, const float* weight,
                                     const float* mean, const float* rstd, int N, int C,
                                     uint16_t* dinp16, float* dinp_sums) = 0;
  // The attention ops with qkv as bf16 bits (that output) and their output as bf16 too (which
  // only the attention projection, a matmul, and the attention's backward read): the fp32 ops on
  // the widened qkv, their out rounded to bf16 and, in the backward, widened again; the backward
  // takes dout as bf16 (the attention projection's dinp) and its dqkv is rounded to bf16 too (only
  // the QKV projection's backward reads it, through MatmulBackwardBf16Grad). Given dbias (3C, or
  // null), the backward also adds that projection's bias gradient, the column sums of the rounded
  // dqkv in fp32, which the projection's backward then need not (CUDA: as the kernels store dqkv;
  // the CPU's bitwise MatmulBackwardBf16Grad's). At kBf16 with
  // head size 64 or 128 the CUDA kernels round qkv to bf16 anyway, so they read these as they are
  // and write out as bf16, without conversion passes. Elsewhere (and on the CPU) qkv and out are
  // widened to fp32 first (on CUDA into buffers grown beyond the plan).
  virtual void AttentionForwardBf16(uint16_t* out, float* lse, const uint16_t* qkv, int B, int T,
                                    int C, int NH) = 0;
  virtual void AttentionBackwardBf16(uint16_t* dqkv, float* dbias, const uint16_t* dout,
                                     const uint16_t* qkv, const uint16_t* out, const float* lse,
                                     int B, int T, int C, int NH) = 0;

  // Causal multi-head self-attention, softmax(q k^T / sqrt(hs)) v, computed flash-style:
  // no (T,T) matrix is kept. qkv (B,T,3C): q, k, v, each C wide, head h at columns
  // [h*hs, (h+1)*hs). out (B,T,C) = heads concatenated. lse (B,NH,T) = logsumexp of each
  // row of scaled scores, saved for the backward.
  virtual void AttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C,
                                int NH) = 0;
  // dqkv (B,T,3C) = gradient of the attention w.r.t. qkv (overwritten, not accumulated),
  // given dout (B,T,C) and the forward's qkv, out and lse.
  virtual void AttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                                 const float* lse, int B, int T, int C, int NH) = 0;

  // Grouped-query attention: the causal attention above with NH query heads and NKV key/value
  // heads (NH % NKV == 0); query head h reads key/value head h / (NH / NKV).
  // qkv (B,T,(NH+2*NKV)*hs): per row, the NH query heads, then the NKV key heads, then the NKV
  // value heads, each hs wide (q head h at columns [h*hs, (h+1)*hs), k head g at
  // [(NH+g)*hs, ...), v head g at [(NH+NKV+g)*hs, ...)). out (B,T,NH*hs); lse (B,NH,T).
  // With NKV == NH this is exactly AttentionForward/AttentionBackward (C = NH*hs), bitwise.
  virtual void GqaAttentionForward(float* out, float* lse, const float* qkv, int B, int T, int NH,
                                   int NKV, int hs) = 0;
  // dqkv (B,T,(NH+2*NKV)*hs) = gradient w.r.t. qkv (overwritten). A key/value head's gradient
  // sums its query heads' contributions in ascending head order (no atomics).
  virtual void GqaAttentionBackward(float* dqkv, const float* dout, const float* qkv,
                                    const float* out, const float* lse, int B, int T, int NH,
                                    int NKV, int hs) = 0;

  // Rotary position embeddings, Hugging Face Llama's convention (rotate_half), in place on the
  // NH query heads and NKV key heads of qkv (B,T,(NH+2*NKV)*hs) (the GQA layout; the value
  // heads are left alone). hs is even; with half = hs/2 and, for i < half,
  // angle = t * theta^(-2i/hs) (t the position in [0, T), in double; cos and sin rounded to
  // float), each head vector x becomes
  //   x[i] = x[i] cos - x[i+half] sin,  x[i+half] = x[i+half] cos + x[i] sin.
  virtual void RopeForward(float* qkv, int B, int T, int NH, int NKV, int hs, double theta) = 0;
  // The backward: the inverse rotation (angle -> -angle), in place on the q and k heads of
  // dqkv (B,T,(NH+2*NKV)*hs), turning the gradient w.r.t. the rotated q, k into the gradient
  // w.r.t. the unrotated ones.
  virtual void RopeBackward(float* dqkv, int B, int T, int NH, int NKV, int hs, double theta) = 0;

  // SwiGLU on a fused gate/up projection: gu (N,2F) holds gate in columns [0, F) and up in
  // [F, 2F) of each row (one GEMM with the gate and up weights stacked).
  // out (N,F) = silu(gate) * up, silu(x) = x * sigmoid(x).
  virtual void SwiGluForward(float* out, const float* gu, int N, int F) = 0;
  // dgu (N,2F) = gradient w.r.t. gu (overwritten): d gate = dout * up * silu'(gate),
  // d up = dout * silu(gate).
  virtual void SwiGluBackward(float* dgu, const float* dout, const float* gu, int N, int F) = 0;

  // out[i] = x[i] rounded to bf16 (to nearest even): a model's copies of its GEMM weights
  // (MatmulParam::b16).
  virtual void RoundToBf16(uint16_t* out, const float* x, size_t n) = 0;

  // out[i] = gelu(inp[i]), the tanh approximation GPT-2 uses.
  virtual void GeluForward(float* out, const float* inp, size_t n) = 0;
  // dinp[i] = gelu'(inp[i]) * dout[i] (overwritten). dinp may alias dout.
  virtual void GeluBackward(float* dinp, const float* inp, const float* dout, size_t n) = 0;

  // out[i] = a[i] + b[i]. out may alias a or b.
  virtual void Add(float* out, const float* a, const float* b, size_t n) = 0;
  // y[i] += x[i]. x may also be pinned host memory, which GPU backends reach through its
  // mapping (offloaded gradient shards).
  virtual void Accumulate(float* y, const float* x, size_t n) = 0;

  // Softmax cross-entropy over the first V columns of logits (N,Vp).
  // losses (N) = -log softmax(logits[n, :V])[targets[n]]; a row with targets[n] < 0 is
  // ignored (loss 0). If dlogits_scale != 0, logits is overwritten with its gradient:
  // (softmax - onehot(target)) * dlogits_scale for n with a target, 0 for ignored rows and
  // for the padding columns [V, Vp).
  virtual void CrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V,
                            int Vp, float dlogits_scale) = 0;
  // CrossEntropy on bf16 logits (bits; GPT-2's head at bf16 writes them so, as under PyTorch's
  // autocast): the widened logits' loss, in fp32 as above, and the gradient written over them
  // rounded to bf16. As CrossEntropy on the widened logits, its gradient rounded, bitwise on the
  // CPU.
  virtual void CrossEntropyBf16(float* losses, uint16_t* logits, const int32_t* targets, int N,
                                int V, int Vp, float dlogits_scale) = 0;

  // *acc += sum of x[i]^2, the sum taken in double in a fixed order. acc is one double in the
  // backend's memory, so summing many tensors needs a single readback (CopyToHost) at the end.
  virtual void AddSumSquares(double* acc, const float* x, size_t n) = 0;
  // AddSumSquares(acc, part.data(), part.size()) for each of `parts` in order, bitwise, in few
  // launches (the gradient norm over the Units' tensors). The parts are the backend's memory;
  // the list is host memory read during the call.
  virtual void AddSumSquaresParts(double* acc, std::span<const std::span<const float>> parts) = 0;
  // *acc += values[0], then += values[1], ... (n doubles, all in the backend's memory): sums
  // taken apart (AddSumSquares into zeroed doubles) added as AddSumSquares would have, bitwise.
  virtual void AddInOrder(double* acc, const double* values, size_t n) = 0;

  // *acc += double(float(sum of x[i] in double / divisor)), or += 0 when divisor is 0; the sum
  // in index order on the CPU, in a fixed order on other backends. acc is one double in the
  // backend's memory. For the mean loss of a micro-batch (x the per-token losses, ignored
  // tokens 0, divisor the number of counted tokens), read once per step.
  virtual void AddMean(double* acc, const float* x, size_t n, size_t divisor) = 0;

  // One AdamW step with bias correction, elementwise over n values:
  //   g = grad * grad_scale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  //   param = param * (1 - lr * wd) - lr * (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps)
  // (the order of torch.optim.AdamW).
  virtual void AdamW(float* param, const float* grad, float* m, float* v, size_t n,
                     const AdamWParams& p) = 0;
  // AdamW over `parts` ranges of the same four arrays in few launches (a Unit's tensors): part k
  // is elements [ranges[2k], ranges[2k+1]) of param, grad, m and v alike, with weight decay
  // weight_decays[k] (p.weight_decay is not read). Bitwise one AdamW call per part. ranges (2 *
  // parts offsets, the parts disjoint) and weight_decays are host memory read during the call.
  // Unless param_bf16 (laid out as param) is null, the parts' updated parameters are also stored
  // there as RoundToBf16 stores them (the matmuls' weight copies, without a pass of their own).
  virtual void AdamWParts(float* param, uint16_t* param_bf16, const float* grad, float* m, float* v,
                          const size_t* ranges, const float* weight_decays, size_t parts,
                          const AdamWParams& p) = 0;
};

}  // namespace spillway::kernels
