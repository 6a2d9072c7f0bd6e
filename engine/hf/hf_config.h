// A Hugging Face config.json, read into spillway's ModelConfig and written from it.
//
// Read: model_type "gpt2" (n_layer, n_head, n_embd, n_positions -> seq_len, vocab_size,
// layer_norm_epsilon) or "llama" (num_hidden_layers, num_attention_heads, num_key_value_heads,
// hidden_size, intermediate_size, max_position_embeddings -> seq_len, vocab_size, rope_theta
// (top level or in rope_parameters), rms_norm_eps, tie_word_embeddings). A setting our models
// do not compute (another activation, LayerNorm eps, RoPE scaling, biases, an untied GPT-2
// head) is an InvalidArgument naming the file and the key, never silently ignored.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config/config.h"
#include "engine/hf/hf_names.h"
#include "nlohmann/json.hpp"

namespace spillway {

struct HfModelInfo {
  const HfArchitecture* arch = nullptr;
  ModelConfig model;
  bool tie_word_embeddings = true;
  std::string dtype;  // "torch_dtype" or "dtype" as written ("float32", "bfloat16"), or empty
};

// Parses the text of `path` (named in every error).
absl::StatusOr<HfModelInfo> ParseHfConfig(absl::string_view json_text, absl::string_view path);

// The config.json a Hugging Face loader needs for `model`, with `dtype` ("float32" or
// "bfloat16") as its torch_dtype. InvalidArgument for a model type without a table.
absl::StatusOr<nlohmann::json> HfConfigJson(const ModelConfig& model, absl::string_view dtype);

}  // namespace spillway
