// GPT-2 as a list of Units: "embed" (wte, wpe), "h.0" ... "h.{L-1}" (pre-LN blocks with causal
// multi-head attention and a GELU MLP), "head" (ln_f; the LM head is tied to wte).
//
// Tensor names follow PyTorch's nn.Linear convention (weight (out, in)) with GPT-2's module
// names: "wte" (Vp,C), "wpe" (T,C), "h.{i}.ln_1.weight" (C), "h.{i}.attn.c_attn.weight"
// (3C,C), ..., "ln_f.bias" (C). Rows of wte past vocab_size are padding: zero, never trained.
//
// The tied head needs the embedding Unit at both ends of each pass. The rest of the contract
// is Model's (engine/model/model.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config/config.h"
#include "engine/model/model.h"
#include "kernels/ops.h"
#include "partitioner/unit_residency.h"
#include "partitioner/unit_state.h"

namespace spillway {

class Gpt2 : public Model {
 public:
  // Plans and allocates everything for micro-batches of `batch` rows of config.seq_len
  // tokens. With `activation_checkpointing`, only each block's input is kept during the
  // forward and the block's forward is recomputed inside its backward.
  // `sharding` says how this rank holds the Units' state (ZeRO; partitioner/unit_state.h).
  // Set the ops' matmul precision first: at kBf16 the activations of
  // engine/model/bf16_activations.h are allocated and kept in bf16.
  static absl::StatusOr<std::unique_ptr<Gpt2>> Create(const ModelConfig& config, int batch,
                                                      bool activation_checkpointing,
                                                      kernels::Ops* ops,
                                                      const ShardingPlan& sharding = {},
                                                      bool offload_checkpoints = false,
                                                      std::span<const int> held_units = {});

  // GPT-2 initialisation from `seed`: weights N(0, init_std), the two residual projections
  // (attn.c_proj, mlp.c_proj) N(0, init_std / sqrt(2 L)), biases 0, LayerNorm weights 1.
  absl::Status InitParams(uint64_t seed) override;
  void ForwardUnits(int first, int end, const int32_t* inputs, const int32_t* targets,
                    const float* input, double* loss_sum) override;
  const float* UnitsOutput(int end) const override;
  const float* InputGrad() const override;

  size_t param_count() const override;
  size_t activation_bytes() const override;
  size_t weight_copy_bytes() const override;
  std::string Describe() const override;
  // The activation bytes Create() would allocate for this shape, with ops at `precision`: for
  // reports and planning.
  static size_t PlannedActivationBytes(const ModelConfig& config, int batch,
                                       bool activation_checkpointing,
                                       kernels::MatmulPrecision precision);
  const float* logits() const override;

  ~Gpt2() override;

 private:
  struct Impl;
  Gpt2(const ModelConfig& config, int batch, kernels::Ops* ops);
  void RunBackwardUnits(int first, int end, float loss_scale, bool last_micro_batch,
                        const float* output_grad) override;
  // Unit u's weight copies from its live parameters (acquired), where it keeps them and AdamW
  // has not stored the current parameters there already (UnitState::weight_copy_current).
  void RoundWeightCopies(int u);
  // Tensor t of Unit u (acquired) as a matmul weight, with its copy where the Unit keeps them.
  kernels::MatmulParam Weight(int u, const TensorSpec& t);

  std::unique_ptr<Impl> impl_;
};

}  // namespace spillway
