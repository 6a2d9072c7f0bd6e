// Llama (Hugging Face LlamaForCausalLM's math) as a list of Units: "embed", "layers.0" ...
// "layers.{L-1}" (pre-RMSNorm decoder layers: grouped-query attention with rotary position
// embeddings, a SwiGLU MLP, no biases), "head" (the final RMSNorm and an untied LM head).
//
// Tensor names are Hugging Face's without the "model." prefix, so an importer maps them 1:1:
//   embed:      "embed_tokens.weight" (Vp,C)
//   layers.{i}: "layers.{i}.input_layernorm.weight" (C),
//               "layers.{i}.self_attn.q_proj.weight" (NH*hs,C), "...k_proj.weight" (NKV*hs,C),
//               "...v_proj.weight" (NKV*hs,C), "...o_proj.weight" (C,NH*hs),
//               "layers.{i}.post_attention_layernorm.weight" (C),
//               "layers.{i}.mlp.gate_proj.weight" (F,C), "...up_proj.weight" (F,C),
//               "...down_proj.weight" (C,F)
//   head:       "norm.weight" (C), "lm_head.weight" (Vp,C)
// nn.Linear layout (weight (out,in)). Rows of embed_tokens and lm_head past vocab_size are
// padding (Vp = vocab_size rounded up to 64): zero, never trained; an importer copies the
// vocab_size rows Hugging Face has and leaves the rest zero.
//
// Shape (engine/config/config.h ModelConfig): n_layer, n_head, n_kv_head (0: n_head), d_model,
// ffn_hidden (0: 4 d_model), vocab_size, seq_len, rope_theta, rms_norm_eps; head size
// d_model / n_head. RoPE positions are 0..seq_len-1 in every sequence.
//
// The contract is Model's (engine/model/model.h). The head is untied, so each pass uses each
// Unit once: the embedding Unit only at the start of the forward and the end of the backward.
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
#include "partitioner/unit_state.h"

namespace spillway {

class Llama : public Model {
 public:
  // Plans and allocates everything for micro-batches of `batch` rows of config.seq_len tokens.
  // InvalidArgument (naming the model key) for a shape Llama cannot take (llama_layout.h).
  static absl::StatusOr<std::unique_ptr<Llama>> Create(const ModelConfig& config, int batch,
                                                       bool activation_checkpointing,
                                                       kernels::Ops* ops,
                                                       const ShardingPlan& sharding = {},
                                                       bool offload_checkpoints = false,
                                                       std::span<const int> held_units = {});

  // Hugging Face's Llama initialisation from `seed`: every weight matrix and the embedding
  // N(0, init_std) (initializer_range), RMSNorm weights 1; padding rows 0.
  absl::Status InitParams(uint64_t seed) override;
  void ForwardUnits(int first, int end, const int32_t* inputs, const int32_t* targets,
                    const float* input, double* loss_sum) override;
  const float* UnitsOutput(int end) const override;
  const float* InputGrad() const override;

  size_t param_count() const override;
  size_t activation_bytes() const override;
  std::string Describe() const override;
  // The activation bytes Create() would allocate for this shape: for reports and planning.
  static size_t PlannedActivationBytes(const ModelConfig& config, int batch,
                                       bool activation_checkpointing);
  const float* logits() const override;

  ~Llama() override;

 private:
  struct Impl;
  Llama(const ModelConfig& config, int batch, kernels::Ops* ops);
  void RunBackwardUnits(int first, int end, float loss_scale, bool last_micro_batch,
                        const float* output_grad) override;

  std::unique_ptr<Impl> impl_;
};

}  // namespace spillway
