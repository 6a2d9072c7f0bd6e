// What the trainer, the optimizer step, checkpoints, export and the benches see of a model:
// a list of Units (partitioner/unit_state.h) with a forward, a backward and named tensors.
// Gpt2 (engine/model/gpt2.h) and Llama (engine/model/llama.h) implement it; CreateModel picks
// one by model.type.
//
// Contract shared by every model: it computes through kernels::Ops only; it owns its Units'
// state and its activation buffers, planned once for micro-batches of (batch, seq_len) tokens,
// all in the backend's memory tier (ops->memory_tier()), so pointers it hands out (FindParam,
// FindGrad, logits, unit buffers) are backend pointers. With activation checkpointing only
// each Unit's input is kept and the Unit's forward is recomputed in its backward (bitwise
// equal). Every use of a Unit's parameters or gradients is bracketed by the UnitResidency
// hooks (set_residency), so ZeRO stages 2-3 work for every model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config/config.h"
#include "engine/model/device_scalars.h"
#include "kernels/ops.h"
#include "partitioner/unit_residency.h"
#include "partitioner/unit_state.h"

namespace spillway {

class Model {
 public:
  virtual ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The model's own initialisation from `seed` (see each model's header). At ZeRO stage 3 each
  // rank stores its shard of the same whole initialisation.
  virtual absl::Status InitParams(uint64_t seed) = 0;

  // Forward over one micro-batch. inputs, targets: (B,T) token ids; a target < 0 is ignored.
  // Adds the mean loss over non-ignored targets (0 if there are none), a float widened to
  // double, to *loss_sum: one double in the backend's memory (DeviceScalars). Does not wait
  // for the backend. Keeps what Backward needs; logits() is valid until Backward.
  void ForwardAccumulate(const int32_t* inputs, const int32_t* targets, double* loss_sum) {
    ForwardUnits(0, num_units(), inputs, targets, nullptr, loss_sum);
  }
  // ForwardAccumulate into a scalar of the model's own, read back: returns the mean loss.
  // Waits for the backend; after a backend failure it returns NaN and Synchronize() has the
  // error.
  float Forward(const int32_t* inputs, const int32_t* targets) {
    return ForwardUnitsLoss(0, num_units(), inputs, targets, nullptr);
  }

  // Accumulates into the grads: d(loss_scale * mean loss of the last Forward) / d params.
  // `last_micro_batch`: no more backward passes before the optimizer step (ranks at ZeRO
  // stages 0-1 reduce their gradients during it).
  void Backward(float loss_scale, bool last_micro_batch = true) {
    RunBackwardUnits(0, num_units(), loss_scale, last_micro_batch, nullptr);
  }
  // ForwardAccumulate, then Backward(loss_scale, last_micro_batch), as one training micro-batch.
  // A model may write the loss's gradient in the loss's own pass over the logits (GPT-2 does:
  // one reading of them less); the gradients equal those of the two calls bitwise, and logits()
  // afterwards holds no logits.
  void ForwardBackward(const int32_t* inputs, const int32_t* targets, double* loss_sum,
                       float loss_scale, bool last_micro_batch = true);

  // Pipeline stages (pipeline/): the forward over Units [first, end) only, using only the
  // Units UnitsUsed(first, end) lists. Starts from the token `inputs` when first == 0, else
  // from `input` ((B,T,C) floats in backend memory: the output of Unit first - 1), which is
  // copied. With end == num_units() it adds the mean loss to *loss_sum
  // (backend memory, as ForwardAccumulate; unused otherwise) and does not wait; otherwise Unit
  // end - 1's output is at UnitsOutput(end) until the next ForwardUnits. Full range: exactly
  // ForwardAccumulate.
  virtual void ForwardUnits(int first, int end, const int32_t* inputs, const int32_t* targets,
                            const float* input, double* loss_sum) = 0;
  // ForwardUnits with the model's own loss scalar: returns the mean loss, read back (a wait),
  // when end == num_units(), else 0 without waiting. NaN after a backend failure.
  float ForwardUnitsLoss(int first, int end, const int32_t* inputs, const int32_t* targets,
                         const float* input);
  // The backward of the last ForwardUnits(first, end, ...): from `output_grad` ((B,T,C), the
  // gradient of the output of Unit end - 1) when end < num_units(), else from the loss. When
  // first > 0 the gradient of its `input` is then at InputGrad() until the next backward.
  void BackwardUnits(int first, int end, float loss_scale, bool last_micro_batch,
                     const float* output_grad) {
    RunBackwardUnits(first, end, loss_scale, last_micro_batch, output_grad);
  }
  virtual const float* UnitsOutput(int end) const = 0;
  virtual const float* InputGrad() const = 0;
  // Floats of one activation between Units: (B, T, d_model).
  size_t boundary_numel() const {
    return static_cast<size_t>(B_) * config_.seq_len * config_.d_model;
  }
  // Whether this rank holds Unit u's state (CreateModel's held_units).
  bool holds(int u) const { return held_[u]; }

  // Starts a step's gradient accumulation: zeroes the gradients (offloaded ones through the
  // residency, which copies their first reduction of the step instead of adding it).
  void ZeroGrads();

  // Routes every Unit's parameter and gradient use through `residency` (not owned; null: the
  // Units' own buffers, which needs ZeRO stage <= 1). Required for stages 2-3.
  void set_residency(UnitResidency* residency) { residency_ = residency; }
  UnitResidency* residency() { return residency_; }
  std::vector<UnitState>& units() { return units_; }
  int num_units() const { return static_cast<int>(units_.size()); }
  UnitState& unit(int i) { return units_[i]; }
  const UnitState& unit(int i) const { return units_[i]; }
  const ModelConfig& config() const { return config_; }
  int batch() const { return B_; }
  int padded_vocab() const { return Vp_; }

  virtual size_t param_count() const = 0;       // without padding rows or alignment gaps
  virtual size_t activation_bytes() const = 0;  // bytes of activation buffers, as allocated
  // Bytes of the bf16 copies of GEMM weights the model keeps beside its parameters
  // (KeepsWeightCopies), as allocated; 0 without.
  virtual size_t weight_copy_bytes() const { return 0; }

  // Whether a Unit's parameters may change between a micro-batch's forward and its backward
  // (PipeMare: weight swaps, updates in flight); false by default. A model keeping bf16 weight
  // copies writes them in each Unit's forward and reuses them in its backward unless this is set;
  // then the backward rounds them again.
  void set_params_change_before_backward(bool change) { params_change_before_backward_ = change; }
  // Training FLOPs per token (forward and backward): 6 per parameter plus attention's.
  double flops_per_token() const;
  // "GPT-2" or "Llama", with the shape, for the trainer's startup line.
  virtual std::string Describe() const = 0;

  // The tensor called `name` (see the model's header), or null: its parameters or its
  // gradient (null too while the Unit's whole state is not live, at ZeRO stages 2-3). The
  // parameters may be written through the pointer (the Unit's weight copy is then rounded anew).
  float* FindParam(absl::string_view name);
  float* FindGrad(absl::string_view name);
  const TensorSpec* FindTensor(absl::string_view name, int* unit_index = nullptr) const;

  // (B, T, Vp) logits of the last Forward: fp32, or the bf16 values' bits where the model keeps
  // its activations in bf16 (GPT-2 created at kBf16 with N and C multiples of 8:
  // engine/model/bf16_activations.h).
  virtual const float* logits() const = 0;

  // Sets Unit u's parameters from `whole` (unit(u).numel() floats on the host): all of them,
  // or this rank's shard at ZeRO stage 3. Waits for the copy.
  absl::Status SetUnitParams(int u, std::span<const float> whole);
  // InitUnitsParallel's bound on host copies of Units it cannot fill in place.
  static constexpr size_t kInitScratchBytes = size_t{4} << 30;

 protected:
  Model(const ModelConfig& config, int batch, int padded_vocab, kernels::Ops* ops)
      : config_(config), B_(batch), Vp_(padded_vocab), ops_(ops) {}

  void AcquireParams(int u);
  void ReleaseParams(int u);
  void AcquireGrads(int u);
  void ReleaseGrads(int u);
  void BeginPass(UnitResidency::Pass pass, bool last_backward = false);
  // Sets every held Unit's parameters to what fill(u, host) writes into `host` (unit(u).numel()
  // floats, zeroed). Units are filled in parallel on the host (each fill must depend on u only):
  // where this rank stores a Unit's parameters whole in host memory, in place (the offloaded
  // shards of one rank, the CPU backend); otherwise through a host copy each, at most
  // kInitScratchBytes of copies at once (at least one Unit), each set as soon as it is filled.
  // Up to 16 threads take Units as they finish, so copies and in-place fills overlap.
  absl::Status InitUnitsParallel(const std::function<void(int, std::span<float>)>& fill);
  // The targets (host memory) that are not ignored (>= 0): what the mean loss divides by
  // (Ops::AddMean).
  static size_t CountValidTargets(const int32_t* targets, size_t n);
  // Appends the Units of `layouts`: those in `held` (empty: all) allocated as `sharding` says,
  // the others with their layout only (no buffers).
  absl::Status AddUnits(std::vector<UnitLayout> layouts, const ShardingPlan& sharding,
                        std::span<const int> held);
  // dst = src, n floats of backend memory.
  void CopyInBackend(float* dst, const float* src, size_t n);

  ModelConfig config_;
  int B_;
  int Vp_;
  kernels::Ops* ops_;
  std::vector<UnitState> units_;
  UnitResidency* residency_ = nullptr;
  std::vector<bool> held_;
  DeviceScalars forward_loss_;  // ForwardUnitsLoss's own loss scalar, allocated on first use
  bool params_change_before_backward_ = false;
  // Set by ForwardBackward during its forward: the Backward that follows takes this loss scale,
  // so a forward may write the loss's gradient already (one that does tells its backward).
  std::optional<float> backward_loss_scale_;

 private:
  virtual void RunBackwardUnits(int first, int end, float loss_scale, bool last_micro_batch,
                                const float* output_grad) = 0;
};

// Builds the model model.type names ("gpt2" or "llama") for micro-batches of `batch` rows;
// InvalidArgument naming model.type for another.
// Set the ops' matmul precision first: GPT-2 sizes its bf16 activations by it.
// `offload_checkpoints` (activation_checkpointing.cpu_checkpointing; needs checkpointing): the
// kept block inputs live in CPU memory (engine/model/residual_stream.h). Only the Units in
// `held_units` (empty: all) get state buffers: a pipeline stage holds its own (StageUnits).
absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelConfig& config, int batch,
                                                   bool activation_checkpointing, kernels::Ops* ops,
                                                   const ShardingPlan& sharding = {},
                                                   bool offload_checkpoints = false,
                                                   std::span<const int> held_units = {});

// The Units that Model::ForwardUnits(first, end, ...) computes with: the range, plus any Unit
// it shares (GPT-2's tied head needs the embed Unit). A pipeline stage holds these.
std::vector<int> StageUnits(const ModelConfig& config, int first, int end);

// The matmul precision of a config's `bf16` / `fp16` sections (kernels::Ops::SetMatmulPrecision).
kernels::MatmulPrecision MatmulPrecisionOf(PrecisionConfig::Mode mode);

// The activation bytes CreateModel would allocate for this shape, with its ops at `precision`
// (GPT-2 keeps some activations in bf16 at kBf16): for reports and planning.
size_t PlannedActivationBytes(const ModelConfig& config, int batch, bool activation_checkpointing,
                              kernels::MatmulPrecision precision = kernels::MatmulPrecision::kFp32);

// Whether CreateModel's model for this shape, its ops at `precision`, keeps bf16 copies of its
// GEMM weights (kernels::MatmulParam::b16): GPT-2 with bf16 activations (Bf16Activations).
// It keeps them for every Unit it holds whose parameters it stores whole (ZeRO stages 0-2) and
// that has a GEMM weight: WeightCopyElements of each, in bf16, laid out as the Unit's params.
// They are made in each Unit's forward (one rounding pass instead of one per GEMM) and read by
// the forward's and the backward's GEMMs.
bool KeepsWeightCopies(const ModelConfig& config, int batch, kernels::MatmulPrecision precision);
// The elements of a Unit's weight copies: its flat size rounded up to UnitLayout::kAlignElems
// if it has a 2-D tensor (a GEMM weight), else 0.
size_t WeightCopyElements(const UnitLayout& layout);

// The GPU bytes of 16-bit GEMM operand copies a step at a 16-bit matmul precision `precision`
// leaves allocated: kernels::MatmulOperandCopyBytes of the model's largest GEMM (the head's, at
// GPT-2 and Llama shapes), or, where GPT-2 keeps bf16 activations (its GEMMs then read bf16
// inputs and gradients as they are), the copy of the fp32 residual gradient (N, C) the output
// projections' backwards round, beside a slot for its largest weight (rounded per GEMM where a
// Unit keeps no weight copy: sharded, or changed before its backward). For planning.
size_t PlannedGemmCopyBytes(const ModelConfig& config, int batch,
                            kernels::MatmulPrecision precision);

// The GPU bytes of the attention's scratch a step leaves allocated: at a 16-bit matmul
// precision with head size 64 or 128, the tensor-core attention's row sums and, unless the model
// keeps bf16 activations (GPT-2 at bf16: 16-bit qkv and dout), its 16-bit operand copies
// (kernels/attention_scratch.h); otherwise the fp32 backward's row sums. For planning.
size_t PlannedAttentionScratchBytes(const ModelConfig& config, int batch,
                                    kernels::MatmulPrecision precision);

// True for the tensors whose rows past vocab_size are padding (GPT-2's wte, Llama's
// embed_tokens.weight and lm_head.weight): zero, never trained, not exported.
bool HasVocabPaddingRows(absl::string_view tensor_name);

}  // namespace spillway
