#include "engine/model/llama_layout.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/model/gpt2_layout.h"

namespace spillway {

LlamaDims LlamaDimsOf(const ModelConfig& config) {
  LlamaDims d;
  d.C = config.d_model;
  d.NH = config.n_head;
  d.NKV = config.n_kv_head > 0 ? config.n_kv_head : config.n_head;
  d.hs = config.n_head > 0 ? config.d_model / config.n_head : 0;
  d.F = config.ffn_hidden > 0 ? config.ffn_hidden : 4 * config.d_model;
  d.Vp = PaddedVocab(config.vocab_size);
  return d;
}

absl::Status ValidateLlamaConfig(const ModelConfig& config) {
  const LlamaDims d = LlamaDimsOf(config);
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("Llama model: ", what));
  };
  if (config.n_layer < 1 || config.n_head < 1 || config.d_model < 1 || config.seq_len < 1 ||
      config.vocab_size < 2 || config.n_kv_head < 0 || config.ffn_hidden < 0) {
    return bad(
        "model.n_layer, n_head, d_model, seq_len must be >= 1, vocab_size >= 2, n_kv_head and "
        "ffn_hidden >= 0 (0: the default)");
  }
  if (config.d_model % config.n_head != 0) {
    return bad(absl::StrCat("model.d_model (", config.d_model, ") must be a multiple of n_head (",
                            config.n_head, ")"));
  }
  if (d.NH % d.NKV != 0) {
    return bad(absl::StrCat("model.n_head (", d.NH, ") must be a multiple of n_kv_head (", d.NKV,
                            "): each key/value head serves n_head / n_kv_head query heads"));
  }
  if (d.hs % 2 != 0) {
    return bad(absl::StrCat("the head size d_model / n_head (", d.hs,
                            ") must be even: rotary embeddings rotate pairs of channels"));
  }
  const int64_t align = static_cast<int64_t>(UnitLayout::kAlignElems);
  if (static_cast<int64_t>(d.C) * d.hs % align != 0 ||
      static_cast<int64_t>(d.C) * d.F % align != 0) {
    return bad(absl::StrCat("model.d_model * head size (", d.C, " * ", d.hs,
                            ") and d_model * ffn_hidden (", d.C, " * ", d.F,
                            ") must be multiples of ", align,
                            ": q/k/v_proj and gate/up_proj are stored back to back and multiplied "
                            "as one GEMM each; choose sizes that are"));
  }
  if (!(config.rope_theta > 0.0) || !(config.rms_norm_eps > 0.0)) {
    return bad("model.rope_theta and rms_norm_eps must be > 0");
  }
  return absl::OkStatus();
}

std::vector<UnitLayout> LlamaLayouts(const ModelConfig& config) {
  const LlamaDims d = LlamaDimsOf(config);
  const int64_t C = d.C, hs = d.hs, F = d.F;
  std::vector<UnitLayout> units;

  UnitLayout embed("embed");
  embed.Add("embed_tokens.weight", {d.Vp, C}, /*weight_decay=*/true);
  units.push_back(std::move(embed));

  for (int i = 0; i < config.n_layer; ++i) {
    const std::string name = absl::StrCat("layers.", i);
    const std::string p = name + ".";
    UnitLayout block(name);
    block.Add(p + "input_layernorm.weight", {C}, false);
    block.Add(p + "self_attn.q_proj.weight", {d.NH * hs, C}, true);
    block.Add(p + "self_attn.k_proj.weight", {d.NKV * hs, C}, true);
    block.Add(p + "self_attn.v_proj.weight", {d.NKV * hs, C}, true);
    block.Add(p + "self_attn.o_proj.weight", {C, d.NH * hs}, true);
    block.Add(p + "post_attention_layernorm.weight", {C}, false);
    block.Add(p + "mlp.gate_proj.weight", {F, C}, true);
    block.Add(p + "mlp.up_proj.weight", {F, C}, true);
    block.Add(p + "mlp.down_proj.weight", {C, F}, true);
    units.push_back(std::move(block));
  }

  UnitLayout head("head");
  head.Add("norm.weight", {C}, false);
  head.Add("lm_head.weight", {d.Vp, C}, true);
  units.push_back(std::move(head));
  return units;
}

}  // namespace spillway
