#include "kernels/cuda/cuda_ops.h"

#include <algorithm>
#include <array>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/cublaslt_matmul.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_graph.h"
#include "kernels/cuda/device_scratch.h"
#include "kernels/cuda/launchers.h"

namespace spillway::kernels {
namespace {

constexpr size_t kGemmWorkspaceBytes = size_t{32} << 20;
// The partial sums of the LayerNorm backward's parameter gradients (layernorm.cu) and of the
// bf16 attention backward's bias gradient (attention_tc.cu), then the bias gradient's arrival
// counters: 16 MiB.
constexpr size_t kPartialSumFloats = size_t{1} << 22;

// Ops enqueue work on one non-blocking stream and never wait for it. The first failure of any call
// is kept and reported by Synchronize(); after a failure later results are meaningless and the
// caller must stop. The *Async copies run on a second non-blocking stream, ordered against the
// compute stream by events, and UploadAsync's on a third, unordered; the events of landed copies
// are recycled.
class CudaOps final : public Ops {
 public:
  static absl::StatusOr<std::unique_ptr<Ops>> Create(int device) {
    auto ops = std::unique_ptr<CudaOps>(new CudaOps());
    SPW_CUDA_CHECK(cudaSetDevice(device));
    ops->device_ = device;
    SPW_CUDA_CHECK(cudaStreamCreateWithFlags(&ops->stream_, cudaStreamNonBlocking));
    for (cudaStream_t& lane : ops->copy_streams_) {
      SPW_CUDA_CHECK(cudaStreamCreateWithFlags(&lane, cudaStreamNonBlocking));
    }
    SPW_CUDA_CHECK(cudaEventCreateWithFlags(&ops->compute_mark_, cudaEventDisableTiming));
    cudaDeviceProp prop;
    SPW_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    const std::string name = prop.name;
    if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) {
      ops->peak_flops_ = 989e12;
    }
    SPW_ASSIGN_OR_RETURN(ops->gemm_, cuda::CublasLtMatmul::Create(kGemmWorkspaceBytes));
    SPW_CUDA_CHECK(cudaMalloc(&ops->partial_sums_, kPartialSumFloats * sizeof(float)));
    // Zero: its tail holds the bias gradient's arrival counters (LaunchBiasGradient).
    SPW_CUDA_CHECK(cudaMemset(ops->partial_sums_, 0, kPartialSumFloats * sizeof(float)));
    return std::unique_ptr<Ops>(std::move(ops));
  }

  ~CudaOps() override {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (cudaStream_t lane : copy_streams_) {
      if (lane != nullptr) cudaStreamSynchronize(lane);
    }
    for (const CopyEvents& c : copies_) c.Destroy();
    for (const CopyEvents& c : free_copy_events_) c.Destroy();
    if (compute_mark_ != nullptr) cudaEventDestroy(compute_mark_);
    for (cudaStream_t lane : copy_streams_) {
      if (lane != nullptr) cudaStreamDestroy(lane);
    }
    gemm_.reset();
    cudaFree(partial_sums_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::string_view name() const override { return "cuda"; }

  absl::Status Synchronize() override {
    Record(CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
    for (cudaStream_t lane : copy_streams_) {
      Record(CudaStatus(cudaStreamSynchronize(lane), "cudaStreamSynchronize (copies)"));
    }
    std::lock_guard<std::mutex> lock(copies_mu_);
    Record(copy_error_);
    return first_error_;
  }

  double peak_flops() const override { return peak_flops_; }
  Tier memory_tier() const override { return Tier::kDevice; }
  void* native_stream() override { return stream_; }
  absl::Status BeginCapture() override {
    SPW_RETURN_IF_ERROR(first_error_);
    return cuda::BeginStreamCapture(stream_);
  }
  absl::StatusOr<std::unique_ptr<OpsGraph>> EndCapture() override {
    absl::StatusOr<std::unique_ptr<OpsGraph>> graph = cuda::EndStreamCapture(stream_);
    // An op refused while recording failed the capture, not the device: the ops stay usable.
    absl::Status refused = std::exchange(first_error_, absl::OkStatus());
    if (!refused.ok()) return Annotate(refused, "capturing a graph");
    return graph;
  }
  void CopyToBackend(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    Record(CudaStatus(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyDefault, stream_),
                      "CopyToBackend"));
  }
  void CopyToHost(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    Record(CudaStatus(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDefault, stream_),
                      "CopyToHost"));
  }
  int64_t CopyToHostAsync(void* host_dst, const void* src, size_t bytes) override {
    return CopyAsync(kOrdered, host_dst, src, bytes);
  }
  int64_t CopyToBackendAsync(void* dst, const void* host_src, size_t bytes) override {
    return CopyAsync(kOrdered, dst, host_src, bytes);
  }
  int64_t UploadAsync(void* dst, const void* host_src, size_t bytes) override {
    return CopyAsync(kUnordered, dst, host_src, bytes);
  }
  absl::Status WaitCopies(int64_t ticket) override {
    std::array<cudaEvent_t, kLanes> last;
    {
      std::lock_guard<std::mutex> lock(copies_mu_);
      if (!copy_error_.ok()) return copy_error_;
      last = LastCopies(ticket);
    }
    // An event recycled meanwhile for a later copy only makes the wait longer: each lane runs in
    // order.
    for (cudaEvent_t end : last) {
      if (end != nullptr) SPW_RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(end), "WaitCopies"));
    }
    return absl::OkStatus();
  }
  bool CopiesLanded(int64_t ticket) override {
    std::lock_guard<std::mutex> lock(copies_mu_);
    for (cudaEvent_t end : LastCopies(ticket)) {
      if (end != nullptr && cudaEventQuery(end) == cudaErrorNotReady) return false;
    }
    return true;
  }
  void ComputeAfterCopies(int64_t ticket) override {
    if (ticket <= 0) return;
    std::lock_guard<std::mutex> lock(copies_mu_);
    for (cudaEvent_t end : LastCopies(ticket)) {
      if (end != nullptr) Record(cudaStreamWaitEvent(stream_, end, 0), "ComputeAfterCopies");
    }
  }
  double TakeCopySeconds() override {
    std::lock_guard<std::mutex> lock(copies_mu_);
    RecycleLanded();
    return std::exchange(landed_seconds_, 0.0);
  }

  void Fill(float* x, float value, size_t n) override {
    Record(cuda::LaunchFill(x, value, n, stream_), "Fill");
  }
  void EmbeddingForward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                        int B, int T, int C) override {
    Record(cuda::LaunchEmbeddingForward(out, tokens, wte, wpe, B, T, C, stream_),
           "EmbeddingForward");
  }
  void EmbeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                         int T, int C) override {
    const size_t bytes = cuda::EmbeddingBackwardScratchBytes(B, T);  // 0: the launch says why
    void* scratch = bytes > 0 ? Scratch<unsigned char>(embedding_scratch_, bytes) : nullptr;
    if (bytes > 0 && scratch == nullptr) return;  // Scratch recorded the error
    Record(cuda::LaunchEmbeddingBackward(dwte, dwpe, dout, tokens, B, T, C, scratch, stream_),
           "EmbeddingBackward");
  }
  void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int N, int C) override {
    Record(cuda::LaunchLayerNormForward(out, mean, rstd, inp, weight, bias, N, C, stream_),
           "LayerNormForward");
  }
  void LayerNormBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                         const float* inp, const float* weight, const float* mean,
                         const float* rstd, int N, int C) override {
    Record(cuda::LaunchLayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C,
                                         partial_sums_, kPartialSumFloats, stream_),
           "LayerNormBackward");
  }
  void LayerNormBackwardBf16(float* dinp, float* dweight, float* dbias, const uint16_t* dout,
                             const float* inp, const float* weight, const float* mean,
                             const float* rstd, int N, int C, uint16_t* dinp16,
                             float* dinp_sums) override {
    Record(cuda::LaunchLayerNormBackwardBf16(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N,
                                             C, partial_sums_, kPartialSumFloats, dinp16, dinp_sums,
                                             stream_),
           "LayerNormBackwardBf16");
  }
  void RmsNormForward(float* out, float* rstd, const float* inp, const float* weight, float eps,
                      int N, int C) override {
    Record(cuda::LaunchRmsNormForward(out, rstd, inp, weight, eps, N, C, stream_),
           "RmsNormForward");
  }
  void RmsNormBackward(float* dinp, float* dweight, const float* dout, const float* inp,
                       const float* weight, const float* rstd, int N, int C) override {
    Record(cuda::LaunchRmsNormBackward(dinp, dweight, dout, inp, weight, rstd, N, C, stream_),
           "RmsNormBackward");
  }
  void SetMatmulPrecision(MatmulPrecision precision) override {
    precision_ = precision;
    gemm_->set_compute_type(precision == MatmulPrecision::kBf16   ? CUBLAS_COMPUTE_32F_FAST_16BF
                            : precision == MatmulPrecision::kFp16 ? CUBLAS_COMPUTE_32F_FAST_16F
                                                                  : CUBLAS_COMPUTE_32F);
  }
  MatmulPrecision matmul_precision() const override { return precision_; }
  void SetMatmulAutotune(bool on) override { gemm_->set_autotune_candidates(on ? 8 : 1); }
  void MatmulForward(float* out, const float* inp, MatmulParam weight, const float* bias,
                     const float* residual, int N, int C, int OC) override {
    Record(gemm_->Forward(out, inp, weight, bias, residual, N, C, OC, stream_));
  }
  void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout,
                      const float* inp, MatmulParam weight, int N, int C, int OC) override {
    Record(gemm_->Backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, stream_));
  }
  void LayerNormForwardBf16(uint16_t* out, float* mean, float* rstd, const float* inp,
                            const float* weight, const float* bias, int N, int C) override {
    Record(cuda::LaunchLayerNormForwardBf16(out, mean, rstd, inp, weight, bias, N, C, stream_),
           "LayerNormForwardBf16");
  }
  void MatmulGeluForwardToBf16(uint16_t* out, uint16_t* pre, const uint16_t* inp,
                               MatmulParam weight, MatmulParam bias, int N, int C,
                               int OC) override {
    Record(gemm_->GeluForwardToBf16(out, pre, inp, weight, bias, N, C, OC, stream_));
  }
  void MatmulGeluBackwardBf16(uint16_t* dpre, float* dweight, float* dbias, MatmulDout dout,
                              const uint16_t* h, const uint16_t* pre, MatmulParam weight, int N,
                              int C, int OC) override {
    Record(gemm_->GeluBackwardBf16(dpre, dweight, dbias, dout, h, pre, weight, N, C, OC, stream_));
  }
  void MatmulBackwardBf16Grad(uint16_t* dinp, float* dweight, float* dbias, const uint16_t* dout,
                              const uint16_t* inp, MatmulParam weight, int N, int C,
                              int OC) override {
    Record(gemm_->BackwardBf16Grad(dinp, dweight, dbias, dout, inp, weight, N, C, OC, stream_));
  }
  void MatmulForwardBf16(float* out, const uint16_t* inp, MatmulParam weight, const float* bias,
                         const float* residual, int N, int C, int OC) override {
    Record(gemm_->ForwardBf16Input(out, inp, weight, bias, residual, N, C, OC, stream_));
  }
  void MatmulBackwardBf16(uint16_t* dinp, float* dweight, float* dbias, MatmulDout dout,
                          const uint16_t* inp, MatmulParam weight, int N, int C, int OC) override {
    Record(gemm_->BackwardBf16Input(dinp, dweight, dbias, dout, inp, weight, N, C, OC, stream_));
  }
  void MatmulForwardToBf16(uint16_t* out, const uint16_t* inp, MatmulParam weight, MatmulParam bias,
                           int N, int C, int OC) override {
    Record(gemm_->ForwardToBf16(out, inp, weight, bias, N, C, OC, stream_));
  }
  void AttentionForwardBf16(uint16_t* out, float* lse, const uint16_t* qkv, int B, int T, int C,
                            int NH) override {
    if (NH > 0 && Bf16TensorCoreAttention(C / NH)) {
      void* scratch = TensorCoreScratch(B, T, NH, NH, C / NH, /*sixteen_bit_inputs=*/true);
      if (scratch == nullptr) return;
      Record(cuda::LaunchTensorCoreAttentionForward(nullptr, out, lse, nullptr, qkv, B, T, NH, NH,
                                                    C / NH, false, scratch, stream_),
             "AttentionForwardBf16 (tensor cores)");
      return;
    }
    const size_t n = static_cast<size_t>(B) * T * C;
    const WideAttention wide = WidenAttention(qkv, n);
    if (wide.qkv == nullptr) return;
    AttentionForward(wide.out, lse, wide.qkv, B, T, C, NH);
    Record(cuda::LaunchToBf16(out, wide.out, n, stream_), "AttentionForwardBf16: round out");
  }
  void AttentionBackwardBf16(uint16_t* dqkv, float* dbias, const uint16_t* dout,
                             const uint16_t* qkv, const uint16_t* out, const float* lse, int B,
                             int T, int C, int NH) override {
    if (NH > 0 && Bf16TensorCoreAttention(C / NH)) {
      void* scratch = TensorCoreScratch(B, T, NH, NH, C / NH, /*sixteen_bit_inputs=*/true);
      if (scratch == nullptr) return;
      // The bias gradient in the kernels where its parts fit the partial-sum scratch.
      const bool fused =
          dbias != nullptr && cuda::TensorCoreAttentionBiasPartsFloats(B, T, NH, NH, C / NH) <=
                                  kPartialSumFloats - cuda::kBiasGradientCounters;
      Record(cuda::LaunchTensorCoreAttentionBackward(nullptr, dqkv, nullptr, dout, nullptr, qkv,
                                                     nullptr, out, lse, B, T, NH, NH, C / NH, false,
                                                     scratch, fused ? dbias : nullptr,
                                                     fused ? partial_sums_ : nullptr, stream_),
             "AttentionBackwardBf16 (tensor cores)");
      if (dbias != nullptr && !fused) QkvBiasGradient(dbias, dqkv, B * T, 3 * C);
      return;
    }
    const size_t n = static_cast<size_t>(B) * T * C;
    const WideAttention wide = WidenAttention(qkv, n);
    float* dqkv32 = Scratch<float>(attention_dqkv_, 4 * n);  // then the widened dout
    if (wide.qkv == nullptr || dqkv32 == nullptr) return;
    float* dout32 = dqkv32 + 3 * n;
    Record(cuda::LaunchBf16ToFloat(wide.out, out, n, stream_), "AttentionBackwardBf16: widen out");
    Record(cuda::LaunchBf16ToFloat(dout32, dout, n, stream_), "AttentionBackwardBf16: widen dout");
    AttentionBackward(dqkv32, dout32, wide.qkv, wide.out, lse, B, T, C, NH);
    Record(cuda::LaunchToBf16(dqkv, dqkv32, 3 * n, stream_), "AttentionBackwardBf16: round dqkv");
    if (dbias != nullptr) QkvBiasGradient(dbias, dqkv, B * T, 3 * C);
  }
  // dbias (OC) += the column sums of the bf16 dqkv (N,OC): the QKV projection's bias gradient.
  void QkvBiasGradient(float* dbias, const uint16_t* dqkv, int N, int OC) {
    Record(
        cuda::LaunchBiasGradientBf16(dbias, dqkv, N, OC, partial_sums_, kPartialSumFloats, stream_),
        "AttentionBackwardBf16: bias gradient");
  }
  void AttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C,
                        int NH) override {
    if (NH > 0 && TensorCoreAttention(C / NH)) {
      GqaAttentionForward(out, lse, qkv, B, T, NH, NH, C / NH);
      return;
    }
    Record(cuda::LaunchAttentionForward(out, lse, qkv, B, T, C, NH, stream_), "AttentionForward");
  }
  void AttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                         const float* lse, int B, int T, int C, int NH) override {
    if (NH > 0 && TensorCoreAttention(C / NH)) {
      GqaAttentionBackward(dqkv, dout, qkv, out, lse, B, T, NH, NH, C / NH);
      return;
    }
    float* scratch = Fp32AttentionScratch(B, T, NH);
    if (scratch == nullptr) return;
    Record(cuda::LaunchAttentionBackward(dqkv, dout, qkv, out, lse, B, T, C, NH, scratch, stream_),
           "AttentionBackward");
  }
  void GqaAttentionForward(float* out, float* lse, const float* qkv, int B, int T, int NH, int NKV,
                           int hs) override {
    if (TensorCoreAttention(hs)) {
      void* scratch = TensorCoreScratch(B, T, NH, NKV, hs, /*sixteen_bit_inputs=*/false);
      if (scratch == nullptr) return;
      Record(cuda::LaunchTensorCoreAttentionForward(out, nullptr, lse, qkv, nullptr, B, T, NH, NKV,
                                                    hs, precision_ == MatmulPrecision::kFp16,
                                                    scratch, stream_),
             "AttentionForward (tensor cores)");
      return;
    }
    Record(cuda::LaunchGqaAttentionForward(out, lse, qkv, B, T, NH, NKV, hs, stream_),
           "GqaAttentionForward");
  }
  void GqaAttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                            const float* lse, int B, int T, int NH, int NKV, int hs) override {
    if (TensorCoreAttention(hs)) {
      void* scratch = TensorCoreScratch(B, T, NH, NKV, hs, /*sixteen_bit_inputs=*/false);
      if (scratch == nullptr) return;
      Record(cuda::LaunchTensorCoreAttentionBackward(
                 dqkv, nullptr, dout, nullptr, qkv, nullptr, out, nullptr, lse, B, T, NH, NKV, hs,
                 precision_ == MatmulPrecision::kFp16, scratch, nullptr, nullptr, stream_),
             "AttentionBackward (tensor cores)");
      return;
    }
    float* scratch = Fp32AttentionScratch(B, T, NH);
    if (scratch == nullptr) return;
    Record(cuda::LaunchGqaAttentionBackward(dqkv, dout, qkv, out, lse, B, T, NH, NKV, hs, scratch,
                                            stream_),
           "GqaAttentionBackward");
  }
  void RopeForward(float* qkv, int B, int T, int NH, int NKV, int hs, double theta) override {
    Record(cuda::LaunchRopeForward(qkv, B, T, NH, NKV, hs, theta, stream_), "RopeForward");
  }
  void RopeBackward(float* dqkv, int B, int T, int NH, int NKV, int hs, double theta) override {
    Record(cuda::LaunchRopeBackward(dqkv, B, T, NH, NKV, hs, theta, stream_), "RopeBackward");
  }
  void SwiGluForward(float* out, const float* gu, int N, int F) override {
    Record(cuda::LaunchSwiGluForward(out, gu, N, F, stream_), "SwiGluForward");
  }
  void SwiGluBackward(float* dgu, const float* dout, const float* gu, int N, int F) override {
    Record(cuda::LaunchSwiGluBackward(dgu, dout, gu, N, F, stream_), "SwiGluBackward");
  }
  void RoundToBf16(uint16_t* out, const float* x, size_t n) override {
    Record(cuda::LaunchToBf16(out, x, n, stream_), "RoundToBf16");
  }
  void GeluForward(float* out, const float* inp, size_t n) override {
    Record(cuda::LaunchGeluForward(out, inp, n, stream_), "GeluForward");
  }
  void GeluBackward(float* dinp, const float* inp, const float* dout, size_t n) override {
    Record(cuda::LaunchGeluBackward(dinp, inp, dout, n, stream_), "GeluBackward");
  }
  void Add(float* out, const float* a, const float* b, size_t n) override {
    Record(cuda::LaunchAdd(out, a, b, n, stream_), "Add");
  }
  void Accumulate(float* y, const float* x, size_t n) override {
    Record(cuda::LaunchAccumulate(y, x, n, stream_), "Accumulate");
  }
  void CrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V, int Vp,
                    float dlogits_scale) override {
    Record(cuda::LaunchCrossEntropy(losses, logits, targets, N, V, Vp, dlogits_scale, stream_),
           "CrossEntropy");
  }
  void CrossEntropyBf16(float* losses, uint16_t* logits, const int32_t* targets, int N, int V,
                        int Vp, float dlogits_scale) override {
    Record(cuda::LaunchCrossEntropyBf16(losses, logits, targets, N, V, Vp, dlogits_scale, stream_),
           "CrossEntropyBf16");
  }
  void AddSumSquares(double* acc, const float* x, size_t n) override {
    double* scratch = SumScratch(n);
    if (scratch == nullptr) return;
    Record(cuda::LaunchAddSumSquares(acc, x, n, scratch, stream_), "AddSumSquares");
  }
  void AddSumSquaresParts(double* acc, std::span<const std::span<const float>> parts) override {
    std::vector<cuda::SumPart> list;
    list.reserve(parts.size());
    for (const std::span<const float> part : parts) list.push_back({part.data(), part.size()});
    for (size_t first = 0; first < list.size(); first += cuda::kSumPartsMax) {
      const size_t count = std::min(list.size() - first, cuda::kSumPartsMax);
      const size_t doubles = cuda::SumSquaresPartsScratchDoubles(list.data() + first, count);
      if (doubles == 0) continue;
      double* scratch = Scratch<double>(sum_scratch_, doubles);
      if (scratch == nullptr) return;
      Record(cuda::LaunchAddSumSquaresParts(acc, list.data() + first, count, scratch, stream_),
             "AddSumSquaresParts");
    }
  }
  void AddInOrder(double* acc, const double* values, size_t n) override {
    Record(cuda::LaunchAddInOrder(acc, values, n, stream_), "AddInOrder");
  }
  void AddMean(double* acc, const float* x, size_t n, size_t divisor) override {
    double* scratch = SumScratch(n);
    if (scratch == nullptr) return;
    Record(cuda::LaunchAddMean(acc, x, n, divisor, scratch, stream_), "AddMean");
  }
  void AdamW(float* param, const float* grad, float* m, float* v, size_t n,
             const AdamWParams& p) override {
    Record(cuda::LaunchAdamW(param, grad, m, v, n, p.lr, p.beta1, p.beta2, p.eps, p.weight_decay,
                             p.step, p.grad_scale, stream_),
           "AdamW");
  }
  void AdamWParts(float* param, uint16_t* param_bf16, const float* grad, float* m, float* v,
                  const size_t* ranges, const float* weight_decays, size_t parts,
                  const AdamWParams& p) override {
    for (size_t first = 0; first < parts; first += cuda::kAdamWPartsMax) {
      const size_t count = std::min(parts - first, cuda::kAdamWPartsMax);
      Record(cuda::LaunchAdamWParts(param, param_bf16, grad, m, v, ranges + 2 * first,
                                    weight_decays + first, count, p.lr, p.beta1, p.beta2, p.eps,
                                    p.step, p.grad_scale, stream_),
             "AdamWParts");
    }
  }

 private:
  // Events around one copy on its lane's stream: busy time, and the end for WaitCopies.
  enum Lane { kOrdered, kUnordered, kLanes };
  struct CopyEvents {
    int64_t ticket = 0;
    Lane lane = kOrdered;
    cudaEvent_t start = nullptr;
    cudaEvent_t end = nullptr;
    void Destroy() const {
      cudaEventDestroy(start);
      cudaEventDestroy(end);
    }
  };

  CudaOps() = default;

  // Per lane, the end of the last copy up to `ticket` not yet recycled (null: none, all landed);
  // caller holds copies_mu_.
  std::array<cudaEvent_t, kLanes> LastCopies(int64_t ticket) const {
    std::array<cudaEvent_t, kLanes> last{};
    for (const CopyEvents& c : copies_) {
      if (c.ticket <= ticket) last[c.lane] = c.end;
    }
    return last;
  }

  // cudaMemcpyDefault: the pointers say the direction (unified addressing), so offloaded Unit
  // state in host memory may stand where backend memory usually does (host to host). Ordered
  // copies start after every op issued before them.
  int64_t CopyAsync(Lane lane, void* dst, const void* src, size_t bytes) {
    std::lock_guard<std::mutex> lock(copies_mu_);
    const int64_t ticket = ++last_ticket_;
    // The calling thread may be another than the ops' (UploadAsync), with its own current device.
    CopyCheck(cudaSetDevice(device_), "copy: device");
    RecycleLanded();
    CopyEvents c;
    if (!free_copy_events_.empty()) {
      c = free_copy_events_.back();
      free_copy_events_.pop_back();
    } else if (!CopyCheck(cudaEventCreate(&c.start), "copy: event") ||
               !CopyCheck(cudaEventCreateWithFlags(&c.end, cudaEventBlockingSync), "copy: event")) {
      return ticket;
    }
    c.ticket = ticket;
    c.lane = lane;
    const cudaStream_t copies = copy_streams_[lane];
    if (lane == kOrdered) {
      CopyCheck(cudaEventRecord(compute_mark_, stream_), "copy: mark compute");
      CopyCheck(cudaStreamWaitEvent(copies, compute_mark_, 0), "copy: wait for compute");
    }
    CopyCheck(cudaEventRecord(c.start, copies), "copy: start");
    if (bytes > 0) CopyCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, copies), "copy");
    CopyCheck(cudaEventRecord(c.end, copies), "copy: end");
    copies_.push_back(c);
    return ticket;
  }
  // Adds up the busy time of the landed copies and recycles their events; caller holds
  // copies_mu_. (An event a WaitCopies caller still waits on may be recorded again for a later
  // copy: that caller waits longer, still correctly, as each lane runs in order.)
  void RecycleLanded() {
    while (!copies_.empty() && cudaEventQuery(copies_.front().end) == cudaSuccess) {
      float ms = 0.0f;
      if (cudaEventElapsedTime(&ms, copies_.front().start, copies_.front().end) == cudaSuccess) {
        landed_seconds_ += 1e-3 * ms;
      }
      free_copy_events_.push_back(copies_.front());
      copies_.pop_front();
    }
  }
  // Keeps the first copy error for WaitCopies and Synchronize; caller holds copies_mu_ (copies
  // may be issued from another thread than the ops).
  bool CopyCheck(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return true;
    if (copy_error_.ok()) copy_error_ = CudaStatus(err, what);
    return false;
  }

  void Record(absl::Status status) {
    if (first_error_.ok() && !status.ok()) first_error_ = std::move(status);
  }
  void Record(cudaError_t err, const char* op) { Record(CudaStatus(err, op)); }

  // At least `count` values of T in `scratch`; null after a failure, which is recorded.
  template <typename T>
  T* Scratch(cuda::DeviceScratch& scratch, size_t count) {
    absl::StatusOr<T*> data = scratch.Get<T>(count, stream_);
    if (!data.ok()) {
      Record(Annotate(data.status(), "scratch"));
      return nullptr;
    }
    return *data;
  }
  // The tensor-core attention's scratch (kernels/attention_scratch.h) for this shape: the row
  // sums alone where the kernels are given 16-bit qkv and dout.
  void* TensorCoreScratch(int B, int T, int NH, int NKV, int hs, bool sixteen_bit_inputs) {
    return Scratch<unsigned char>(attention_scratch_, cuda::TensorCoreAttentionScratchBytes(
                                                          B, T, NH, NKV, hs, sixteen_bit_inputs));
  }
  // The fp32 attention backward's scratch for this shape.
  float* Fp32AttentionScratch(int B, int T, int NH) {
    return Scratch<float>(attention_scratch_, cuda::AttentionScratchFloats(B, T, NH));
  }

  // Mixed precision moves attention's products onto tensor cores too, where the head size
  // allows (kernels/cuda/attention_tc.cu); fp32 keeps the fp32 kernels.
  bool TensorCoreAttention(int hs) const {
    return precision_ != MatmulPrecision::kFp32 && cuda::TensorCoreAttentionSupported(hs);
  }

  bool Bf16TensorCoreAttention(int hs) const {
    return precision_ == MatmulPrecision::kBf16 && cuda::TensorCoreAttentionSupported(hs);
  }
  // The fp32 kernels' operands for the bf16 attention ops off the tensor cores: qkv (3n values)
  // widened, and room for out (n values), in buffers grown to the largest such; null after a
  // failure.
  struct WideAttention {
    const float* qkv = nullptr;
    float* out = nullptr;
  };
  WideAttention WidenAttention(const uint16_t* qkv, size_t n) {
    float* wide = Scratch<float>(qkv_wide_, 3 * n);
    float* out = Scratch<float>(attention_out_, n);
    if (wide == nullptr || out == nullptr) return {};
    Record(cuda::LaunchBf16ToFloat(wide, qkv, 3 * n, stream_), "attention: widen qkv");
    return {wide, out};
  }

  // Scratch for the two-stage sums; null when n == 0 (nothing to add) or after a failure.
  double* SumScratch(size_t n) {
    const size_t doubles = cuda::SumSquaresScratchDoubles(n);
    if (doubles == 0) return nullptr;
    return Scratch<double>(sum_scratch_, doubles);
  }

  MatmulPrecision precision_ = MatmulPrecision::kFp32;
  double peak_flops_ = 0.0;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::CublasLtMatmul> gemm_;
  float* partial_sums_ = nullptr;  // kPartialSumFloats, used by one op at a time
  cuda::DeviceScratch attention_scratch_;
  cuda::DeviceScratch sum_scratch_;
  cuda::DeviceScratch embedding_scratch_;  // the embedding backward's sort of positions by token
  cuda::DeviceScratch qkv_wide_;        // the bf16 attention ops' qkv, widened off the tensor cores
  cuda::DeviceScratch attention_out_;   // and their output in fp32 there
  cuda::DeviceScratch attention_dqkv_;  // and the backward's dqkv in fp32 there
  absl::Status first_error_;
  int device_ = 0;
  std::array<cudaStream_t, kLanes> copy_streams_{};
  cudaEvent_t compute_mark_ = nullptr;  // the compute stream's point an ordered copy waits for
  std::mutex copies_mu_;                // guards the fields below
  int64_t last_ticket_ = 0;
  // Issued, busy time not yet taken, in ticket order; recycled up to the first not landed.
  std::deque<CopyEvents> copies_;
  std::vector<CopyEvents> free_copy_events_;
  double landed_seconds_ = 0.0;
  absl::Status copy_error_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Ops>> MakeCudaOps(int device) { return CudaOps::Create(device); }

}  // namespace spillway::kernels
