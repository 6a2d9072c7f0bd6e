#include "engine/hf/hf_names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace spillway {
namespace {

constexpr HfLayout kT = HfLayout::kTranspose;

const HfArchitecture& Gpt2Table() {
  static const HfArchitecture* table = new HfArchitecture{
      "gpt2",
      "GPT2LMHeadModel",
      "transformer.",
      {
          {"wte", "wte.weight", HfLayout::kSame, /*vocab_rows=*/true},
          {"wpe", "wpe.weight", HfLayout::kSame, false, /*position_rows=*/true},
          {"h.{i}.ln_1.weight", "h.{i}.ln_1.weight"},
          {"h.{i}.ln_1.bias", "h.{i}.ln_1.bias"},
          {"h.{i}.attn.c_attn.weight", "h.{i}.attn.c_attn.weight", kT},
          {"h.{i}.attn.c_attn.bias", "h.{i}.attn.c_attn.bias"},
          {"h.{i}.attn.c_proj.weight", "h.{i}.attn.c_proj.weight", kT},
          {"h.{i}.attn.c_proj.bias", "h.{i}.attn.c_proj.bias"},
          {"h.{i}.ln_2.weight", "h.{i}.ln_2.weight"},
          {"h.{i}.ln_2.bias", "h.{i}.ln_2.bias"},
          {"h.{i}.mlp.c_fc.weight", "h.{i}.mlp.c_fc.weight", kT},
          {"h.{i}.mlp.c_fc.bias", "h.{i}.mlp.c_fc.bias"},
          {"h.{i}.mlp.c_proj.weight", "h.{i}.mlp.c_proj.weight", kT},
          {"h.{i}.mlp.c_proj.bias", "h.{i}.mlp.c_proj.bias"},
          {"ln_f.weight", "ln_f.weight"},
          {"ln_f.bias", "ln_f.bias"},
      },
      // The causal-mask buffers older transformers saved, and the head tied to wte.
      {"transformer.h.{i}.attn.bias", "transformer.h.{i}.attn.masked_bias", "h.{i}.attn.bias",
       "h.{i}.attn.masked_bias", "lm_head.weight"},
  };
  return *table;
}

const HfArchitecture& LlamaTable() {
  static const HfArchitecture* table = new HfArchitecture{
      "llama",
      "LlamaForCausalLM",
      "model.",
      {
          {"embed_tokens.weight", "embed_tokens.weight", HfLayout::kSame, /*vocab_rows=*/true},
          {"layers.{i}.input_layernorm.weight", "layers.{i}.input_layernorm.weight"},
          {"layers.{i}.self_attn.q_proj.weight", "layers.{i}.self_attn.q_proj.weight"},
          {"layers.{i}.self_attn.k_proj.weight", "layers.{i}.self_attn.k_proj.weight"},
          {"layers.{i}.self_attn.v_proj.weight", "layers.{i}.self_attn.v_proj.weight"},
          {"layers.{i}.self_attn.o_proj.weight", "layers.{i}.self_attn.o_proj.weight"},
          {"layers.{i}.post_attention_layernorm.weight",
           "layers.{i}.post_attention_layernorm.weight"},
          {"layers.{i}.mlp.gate_proj.weight", "layers.{i}.mlp.gate_proj.weight"},
          {"layers.{i}.mlp.up_proj.weight", "layers.{i}.mlp.up_proj.weight"},
          {"layers.{i}.mlp.down_proj.weight", "layers.{i}.mlp.down_proj.weight"},
          {"norm.weight", "norm.weight"},
          {"lm_head.weight", "lm_head.weight", HfLayout::kSame, /*vocab_rows=*/true, false,
           /*top_level=*/true, /*tied_to=*/"embed_tokens.weight"},
      },
      // RoPE frequencies some older checkpoints saved: recomputed from rope_theta.
      {"model.layers.{i}.self_attn.rotary_emb.inv_freq"},
  };
  return *table;
}

// True if `name` is `pattern` with "{i}" (if any) replaced by a decimal number; sets *index.
bool MatchPattern(absl::string_view pattern, absl::string_view name, std::string* index) {
  const size_t at = pattern.find("{i}");
  if (at == absl::string_view::npos) return pattern == name;
  const absl::string_view prefix = pattern.substr(0, at), suffix = pattern.substr(at + 3);
  if (name.size() <= prefix.size() + suffix.size() || !absl::StartsWith(name, prefix) ||
      !absl::EndsWith(name, suffix)) {
    return false;
  }
  const absl::string_view digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  *index = std::string(digits);
  return true;
}

std::string Fill(absl::string_view pattern, const std::string& index) {
  return absl::StrReplaceAll(pattern, {{"{i}", index}});
}

}  // namespace

absl::StatusOr<const HfArchitecture*> FindHfArchitecture(absl::string_view model_type,
                                                         absl::string_view source) {
  for (const HfArchitecture* arch : {&Gpt2Table(), &LlamaTable()}) {
    if (model_type == arch->model_type) return arch;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": model_type \"", model_type,
                   "\" is not supported; spillway reads and writes \"gpt2\" and \"llama\""));
}

absl::StatusOr<HfTensorName> ToHfName(const HfArchitecture& arch, absl::string_view ours) {
  std::string index;
  for (const HfTensorRule& rule : arch.rules) {
    if (!MatchPattern(rule.ours, ours, &index)) continue;
    HfTensorName out;
    out.rule = &rule;
    out.hf = absl::StrCat(rule.top_level ? "" : arch.base_prefix, Fill(rule.hf, index));
    if (rule.tied_to != nullptr) out.tied_to = absl::StrCat(arch.base_prefix, rule.tied_to);
    return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tensor \"", ours, "\" has no Hugging Face ", arch.model_type, " name"));
}

bool IsSkippedHfTensor(const HfArchitecture& arch, absl::string_view hf) {
  std::string index;
  for (const char* pattern : arch.skipped) {
    if (MatchPattern(pattern, hf, &index)) return true;
  }
  return false;
}

std::vector<int64_t> HfShape(const HfTensorRule& rule, const std::vector<int64_t>& ours,
                             int vocab_size) {
  std::vector<int64_t> shape = ours;
  if (rule.vocab_rows && !shape.empty()) shape[0] = vocab_size;
  if (rule.layout == HfLayout::kTranspose && shape.size() == 2) std::swap(shape[0], shape[1]);
  return shape;
}

}  // namespace spillway
