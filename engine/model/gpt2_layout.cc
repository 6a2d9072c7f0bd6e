#include "engine/model/gpt2_layout.h"

#include "absl/strings/str_cat.h"

namespace spillway {

int PaddedVocab(int vocab_size) { return (vocab_size + 63) / 64 * 64; }

std::vector<UnitLayout> Gpt2Layouts(const ModelConfig& config) {
  const int64_t C = config.d_model;
  std::vector<UnitLayout> units;

  UnitLayout embed("embed");
  embed.Add("wte", {PaddedVocab(config.vocab_size), C}, /*weight_decay=*/true);
  embed.Add("wpe", {config.seq_len, C}, true);
  units.push_back(std::move(embed));

  for (int i = 0; i < config.n_layer; ++i) {
    const std::string p = absl::StrCat("h.", i, ".");
    UnitLayout block(absl::StrCat("h.", i));
    block.Add(p + "ln_1.weight", {C}, false);
    block.Add(p + "ln_1.bias", {C}, false);
    block.Add(p + "attn.c_attn.weight", {3 * C, C}, true);
    block.Add(p + "attn.c_attn.bias", {3 * C}, false);
    block.Add(p + "attn.c_proj.weight", {C, C}, true);
    block.Add(p + "attn.c_proj.bias", {C}, false);
    block.Add(p + "ln_2.weight", {C}, false);
    block.Add(p + "ln_2.bias", {C}, false);
    block.Add(p + "mlp.c_fc.weight", {4 * C, C}, true);
    block.Add(p + "mlp.c_fc.bias", {4 * C}, false);
    block.Add(p + "mlp.c_proj.weight", {C, 4 * C}, true);
    block.Add(p + "mlp.c_proj.bias", {C}, false);
    units.push_back(std::move(block));
  }

  UnitLayout head("head");
  head.Add("ln_f.weight", {C}, false);
  head.Add("ln_f.bias", {C}, false);
  units.push_back(std::move(head));
  return units;
}

}  // namespace spillway
