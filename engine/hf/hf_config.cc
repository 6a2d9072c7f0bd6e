#include "engine/hf/hf_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {
namespace {

using Json = nlohmann::json;

// Reads the keys of one config.json; every error names the file and the key.
class Reader {
 public:
  Reader(const Json& json, absl::string_view path) : json_(json), path_(path) {}

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": \"", key, "\" ", what));
  }

  // A required integer >= 1.
  absl::StatusOr<int> Positive(const char* key) const {
    const auto it = json_.find(key);
    if (it == json_.end()) return Error(key, "is missing");
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > (1 << 30)) {
      return Error(key, absl::StrCat("must be a positive integer, not ", it->dump()));
    }
    return static_cast<int>(it->get<int64_t>());
  }
  absl::StatusOr<int> Positive(const char* key, int fallback) const {
    return Has(key) ? Positive(key) : fallback;
  }

  absl::StatusOr<double> Number(const Json& parent, const char* key, double fallback) const {
    const auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return fallback;
    if (!it->is_number()) return Error(key, absl::StrCat("must be a number, not ", it->dump()));
    return it->get<double>();
  }
  absl::StatusOr<double> Number(const char* key, double fallback) const {
    return Number(json_, key, fallback);
  }

  absl::StatusOr<bool> Bool(const char* key, bool fallback) const {
    const auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return fallback;
    if (!it->is_boolean())
      return Error(key, absl::StrCat("must be true or false, not ", it->dump()));
    return it->get<bool>();
  }

  absl::StatusOr<std::string> String(const char* key, absl::string_view fallback) const {
    const auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return std::string(fallback);
    if (!it->is_string()) return Error(key, absl::StrCat("must be a string, not ", it->dump()));
    return it->get<std::string>();
  }

  // OK if `key` is absent, null or equal to `value`; else an error saying what spillway computes.
  absl::Status Expect(const char* key, const Json& value, absl::string_view why) const {
    const auto it = json_.find(key);
    if (it == json_.end() || it->is_null() || *it == value) return absl::OkStatus();
    return Error(key, absl::StrCat("is ", it->dump(), " but spillway supports only ", value.dump(),
                                   " (", why, ")"));
  }

  bool Has(const char* key) const { return json_.contains(key) && !json_[key].is_null(); }
  const Json& json() const { return json_; }

 private:
  const Json& json_;
  absl::string_view path_;
};

absl::Status ReadGpt2(const Reader& r, HfModelInfo& info) {
  ModelConfig& m = info.model;
  SPW_ASSIGN_OR_RETURN(m.n_layer, r.Positive("n_layer"));
  SPW_ASSIGN_OR_RETURN(m.n_head, r.Positive("n_head"));
  SPW_ASSIGN_OR_RETURN(m.d_model, r.Positive("n_embd"));
  SPW_ASSIGN_OR_RETURN(m.seq_len, r.Positive("n_positions"));
  SPW_ASSIGN_OR_RETURN(m.vocab_size, r.Positive("vocab_size"));
  if (m.d_model % m.n_head != 0) {
    return r.Error("n_embd", absl::StrCat(m.d_model, " is not divisible by n_head ", m.n_head));
  }
  SPW_ASSIGN_OR_RETURN(const double eps, r.Number("layer_norm_epsilon", 1e-5));
  if (std::abs(eps - 1e-5) > 1e-12) {
    return r.Error("layer_norm_epsilon",
                   absl::StrCat("is ", eps, " but spillway's GPT-2 uses 1e-5"));
  }
  SPW_ASSIGN_OR_RETURN(const std::string act, r.String("activation_function", "gelu_new"));
  if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu_fast") {
    return r.Error("activation_function",
                   absl::StrCat("is \"", act,
                                "\" but spillway's GPT-2 computes the tanh GELU (\"gelu_new\")"));
  }
  SPW_RETURN_IF_ERROR(r.Expect("n_inner", 4 * m.d_model, "the MLP is 4 * n_embd wide"));
  SPW_RETURN_IF_ERROR(r.Expect("scale_attn_weights", true, "scores are scaled by 1/sqrt(hs)"));
  SPW_RETURN_IF_ERROR(
      r.Expect("scale_attn_by_inverse_layer_idx", false, "no per-layer score scaling"));
  SPW_RETURN_IF_ERROR(r.Expect("tie_word_embeddings", true, "the LM head is wte"));
  info.tie_word_embeddings = true;
  return absl::OkStatus();
}

absl::Status ReadLlama(const Reader& r, HfModelInfo& info) {
  ModelConfig& m = info.model;
  SPW_ASSIGN_OR_RETURN(m.n_layer, r.Positive("num_hidden_layers"));
  SPW_ASSIGN_OR_RETURN(m.n_head, r.Positive("num_attention_heads"));
  SPW_ASSIGN_OR_RETURN(m.n_kv_head, r.Positive("num_key_value_heads", m.n_head));
  SPW_ASSIGN_OR_RETURN(m.d_model, r.Positive("hidden_size"));
  SPW_ASSIGN_OR_RETURN(m.ffn_hidden, r.Positive("intermediate_size"));
  SPW_ASSIGN_OR_RETURN(m.seq_len, r.Positive("max_position_embeddings"));
  SPW_ASSIGN_OR_RETURN(m.vocab_size, r.Positive("vocab_size"));
  if (m.d_model % m.n_head != 0) {
    return r.Error("hidden_size",
                   absl::StrCat(m.d_model, " is not divisible by num_attention_heads ", m.n_head));
  }
  if (m.n_head % m.n_kv_head != 0) {
    return r.Error("num_key_value_heads", absl::StrCat(m.n_kv_head, " does not divide ",
                                                       "num_attention_heads ", m.n_head));
  }
  SPW_RETURN_IF_ERROR(r.Expect("head_dim", m.d_model / m.n_head, "hidden_size / heads"));
  SPW_ASSIGN_OR_RETURN(m.rms_norm_eps, r.Number("rms_norm_eps", 1e-6));
  // transformers 5 moved rope_theta into rope_parameters, with the scaling type.
  const Json& json = r.json();
  const Json rope = json.contains("rope_parameters") && json["rope_parameters"].is_object()
                        ? json["rope_parameters"]
                        : Json::object();
  SPW_ASSIGN_OR_RETURN(const double theta, r.Number("rope_theta", 10000.0));
  SPW_ASSIGN_OR_RETURN(m.rope_theta, r.Number(rope, "rope_theta", theta));
  if (r.Has("rope_scaling")) {
    return r.Error("rope_scaling",
                   absl::StrCat("is ", json["rope_scaling"].dump(),
                                " but spillway's Llama computes plain RoPE (null)"));
  }
  const std::string rope_type = rope.value("rope_type", std::string("default"));
  if (rope_type != "default") {
    return r.Error("rope_parameters", absl::StrCat("has rope_type \"", rope_type,
                                                   "\" but spillway's Llama computes \"default\""));
  }
  SPW_RETURN_IF_ERROR(r.Expect("hidden_act", "silu", "SwiGLU"));
  SPW_RETURN_IF_ERROR(r.Expect("attention_bias", false, "projections have no bias"));
  SPW_RETURN_IF_ERROR(r.Expect("mlp_bias", false, "projections have no bias"));
  SPW_ASSIGN_OR_RETURN(info.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HfModelInfo> ParseHfConfig(absl::string_view json_text, absl::string_view path) {
  const Json json = Json::parse(json_text.begin(), json_text.end(), nullptr,
                                /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a JSON object; a Hugging Face config.json is expected"));
  }
  const Reader r(json, path);
  if (!r.Has("model_type")) return r.Error("model_type", "is missing");
  SPW_ASSIGN_OR_RETURN(const std::string type, r.String("model_type", ""));
  HfModelInfo info;
  SPW_ASSIGN_OR_RETURN(info.arch, FindHfArchitecture(type, path));
  info.model.type = type;
  SPW_RETURN_IF_ERROR(type == "gpt2" ? ReadGpt2(r, info) : ReadLlama(r, info));
  SPW_ASSIGN_OR_RETURN(const std::string dtype, r.String("dtype", ""));
  SPW_ASSIGN_OR_RETURN(info.dtype, r.String("torch_dtype", dtype));
  return info;
}

absl::StatusOr<nlohmann::json> HfConfigJson(const ModelConfig& m, absl::string_view dtype) {
  SPW_ASSIGN_OR_RETURN(const HfArchitecture* arch, FindHfArchitecture(m.type, "model.type"));
  Json json = {{"architectures", {arch->architecture}},
               {"model_type", arch->model_type},
               {"vocab_size", m.vocab_size},
               {"torch_dtype", dtype},
               {"dtype", dtype}};
  if (m.type == "gpt2") {
    json.update({{"n_layer", m.n_layer},
                 {"n_head", m.n_head},
                 {"n_embd", m.d_model},
                 {"n_positions", m.seq_len},
                 {"n_ctx", m.seq_len},
                 {"n_inner", nullptr},
                 {"layer_norm_epsilon", 1e-5},
                 {"activation_function", "gelu_new"},
                 {"scale_attn_weights", true},
                 {"tie_word_embeddings", true}});
  } else {
    json.update({{"num_hidden_layers", m.n_layer},
                 {"num_attention_heads", m.n_head},
                 {"num_key_value_heads", m.n_kv_head > 0 ? m.n_kv_head : m.n_head},
                 {"hidden_size", m.d_model},
                 {"intermediate_size", m.ffn_hidden > 0 ? m.ffn_hidden : 4 * m.d_model},
                 {"max_position_embeddings", m.seq_len},
                 {"rms_norm_eps", m.rms_norm_eps},
                 {"rope_theta", m.rope_theta},
                 {"rope_scaling", nullptr},
                 {"hidden_act", "silu"},
                 {"attention_bias", false},
                 {"mlp_bias", false},
                 {"tie_word_embeddings", false}});
  }
  return json;
}

}  // namespace spillway
