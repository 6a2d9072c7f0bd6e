// Helpers for the HF tests: the committed reference folders (tests/golden/hf_gpt2, hf_llama),
// Llama Unit layouts with HF Llama's names (the Llama model may live on another branch; these
// follow its naming: HF's without "model.", embed_tokens and lm_head padded to PaddedVocab),
// and scratch folders.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/unit_layout.h"
#include "engine/config/config.h"
#include "engine/model/gpt2_layout.h"
#include "gtest/gtest.h"

namespace spillway::testing_util {

inline std::string GoldenDir(const std::string& name) {
  const char* source_dir = std::getenv("SPILLWAY_SOURCE_DIR");
  return absl::StrCat(source_dir != nullptr ? source_dir : ".", "/tests/golden/", name);
}

inline std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/hf_test_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// tests/golden/hf_llama's sizes (make_hf_gpt2_reference.py's LLAMA).
inline ModelConfig GoldenLlamaConfig() {
  ModelConfig m;
  m.type = "llama";
  m.n_layer = 2;
  m.n_head = 4;
  m.n_kv_head = 2;
  m.d_model = 32;
  m.ffn_hidden = 64;
  m.seq_len = 32;
  m.vocab_size = 96;
  m.rms_norm_eps = 1e-5;
  return m;
}

inline std::vector<UnitLayout> LlamaLayouts(const ModelConfig& m) {
  const int64_t C = m.d_model, I = m.ffn_hidden, Vp = PaddedVocab(m.vocab_size);
  const int64_t kv = static_cast<int64_t>(m.n_kv_head) * (m.d_model / m.n_head);
  std::vector<UnitLayout> units;
  UnitLayout embed("embed");
  embed.Add("embed_tokens.weight", {Vp, C}, true);
  units.push_back(std::move(embed));
  for (int i = 0; i < m.n_layer; ++i) {
    const std::string p = absl::StrCat("layers.", i, ".");
    UnitLayout block(absl::StrCat("layers.", i));
    block.Add(p + "input_layernorm.weight", {C}, false);
    block.Add(p + "self_attn.q_proj.weight", {C, C}, true);
    block.Add(p + "self_attn.k_proj.weight", {kv, C}, true);
    block.Add(p + "self_attn.v_proj.weight", {kv, C}, true);
    block.Add(p + "self_attn.o_proj.weight", {C, C}, true);
    block.Add(p + "post_attention_layernorm.weight", {C}, false);
    block.Add(p + "mlp.gate_proj.weight", {I, C}, true);
    block.Add(p + "mlp.up_proj.weight", {I, C}, true);
    block.Add(p + "mlp.down_proj.weight", {C, I}, true);
    units.push_back(std::move(block));
  }
  UnitLayout head("head");
  head.Add("norm.weight", {C}, false);
  head.Add("lm_head.weight", {Vp, C}, true);
  units.push_back(std::move(head));
  return units;
}

}  // namespace spillway::testing_util
