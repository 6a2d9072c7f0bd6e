// GPT-2 as a list of Units: "embed" (wte, wpe), "h.0" ... "h.{L-1}" (pre-LN blocks with causal
// multi-head attention and a GELU MLP), "head" (ln_f; the LM head is tied to wte).
//
// Tensor names follow PyTorch's nn.Linear convention (weight (out, in)) with GPT-2's module
// names: "wte" (Vp,C), "wpe" (T,C), "h.{i}.ln_1.weight" (C), "h.{i}.attn.c_attn.weight"
// (3C,C), ..., "ln_f.bias" (C). Rows of wte past vocab_size are padding: zero, never trained.
//
// The model computes through kernels::Ops only, so the same code runs on every backend.
// It owns its UnitStates (params, grads, Adam state) and its activation buffers, planned once
// for a fixed micro-batch shape (B, T), all in the backend's memory tier (ops->memory_tier()):
// pointers it hands out (FindParam, FindGrad, logits, unit buffers) are backend pointers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config/config.h"
#include "kernels/ops.h"
#include "partitioner/unit_residency.h"
#include "partitioner/unit_state.h"

namespace spillway {

class Gpt2 {
 public:
  // Plans and allocates everything for micro-batches of `batch` rows of config.seq_len
  // tokens. With `activation_checkpointing`, only each block's input is kept during the
  // forward and the block's forward is recomputed inside its backward.
  // `sharding` says how this rank holds the Units' state (ZeRO; partitioner/unit_state.h).
  static absl::StatusOr<std::unique_ptr<Gpt2>> Create(const ModelConfig& config, int batch,
                                                      bool activation_checkpointing,
                                                      kernels::Ops* ops,
                                                      const ShardingPlan& sharding = {});

  // GPT-2 initialisation from `seed`: weights N(0, init_std), the two residual projections
  // (attn.c_proj, mlp.c_proj) N(0, init_std / sqrt(2 L)), biases 0, LayerNorm weights 1.
  absl::Status InitParams(uint64_t seed);

  // Forward over one micro-batch. inputs, targets: (B,T) token ids; a target < 0 is ignored.
  // Returns the mean loss over non-ignored targets (0 if there are none). Keeps what
  // Backward needs; logits() is valid until Backward. Waits for the backend, to read the
  // losses; after a backend failure it returns NaN and Synchronize() has the error.
  float Forward(const int32_t* inputs, const int32_t* targets);

  // Accumulates into the grads: d(loss_scale * mean loss of the last Forward) / d params.
  // `last_micro_batch`: no more backward passes before the optimizer step (ranks at ZeRO
  // stages 0-1 reduce their gradients during it).
  void Backward(float loss_scale, bool last_micro_batch = true);

  // Routes every Unit's parameter and gradient use through `residency` (not owned; null: the
  // Units' own buffers, which needs ZeRO stage <= 1). Required for stages 2-3.
  void set_residency(UnitResidency* residency) { residency_ = residency; }
  std::vector<UnitState>& units() { return units_; }

  void ZeroGrads();

  int num_units() const { return static_cast<int>(units_.size()); }
  UnitState& unit(int i) { return units_[i]; }
  const UnitState& unit(int i) const { return units_[i]; }
  const ModelConfig& config() const { return config_; }
  int batch() const { return B_; }
  int padded_vocab() const { return Vp_; }
  size_t param_count() const;       // without padding rows or alignment gaps
  size_t activation_bytes() const;  // bytes of activation buffers, as allocated
  // The activation bytes Create() would allocate for this shape: for reports and planning.
  static size_t PlannedActivationBytes(const ModelConfig& config, int batch,
                                       bool activation_checkpointing);

  // The tensor called `name` (see above), or null: its parameters or its gradient (null too
  // while the Unit's whole state is not live, at ZeRO stages 2-3).
  float* FindParam(absl::string_view name);
  float* FindGrad(absl::string_view name);
  const TensorSpec* FindTensor(absl::string_view name, int* unit_index = nullptr) const;

  // (B, T, Vp) logits of the last Forward.
  const float* logits() const;

  ~Gpt2();

 private:
  struct Impl;
  Gpt2(const ModelConfig& config, int batch, kernels::Ops* ops);
  void AcquireParams(int u);
  void ReleaseParams(int u);
  void AcquireGrads(int u);
  void ReleaseGrads(int u);

  ModelConfig config_;
  int B_;
  int Vp_;
  kernels::Ops* ops_;
  std::vector<UnitState> units_;
  UnitResidency* residency_ = nullptr;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spillway
