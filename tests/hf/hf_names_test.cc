// The HF name tables and config.json: every spillway tensor maps to the name transformers
// saves (checked against the committed folders), config.json reads into ModelConfig and
// writes back to the same ModelConfig, and settings our models do not compute are refused.
#include "engine/hf/hf_names.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/file_io.h"
#include "core/safetensors.h"
#include "engine/hf/hf_config.h"
#include "engine/hf/hf_model.h"
#include "engine/model/gpt2_layout.h"
#include "tests/hf/hf_test_util.h"

namespace spillway {
namespace {

using testing_util::GoldenDir;
using testing_util::LlamaLayouts;

// The names transformers saved for the model of `folder`, and the HF names our layouts map to,
// must be the same sets.
void ExpectSameNames(const std::string& folder, const std::vector<UnitLayout>& layouts,
                     const HfArchitecture& arch) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(folder + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  std::set<std::string> saved(file->names().begin(), file->names().end());
  std::set<std::string> mapped;
  for (const UnitLayout& layout : layouts) {
    for (const TensorSpec& t : layout.tensors()) {
      absl::StatusOr<HfTensorName> name = ToHfName(arch, t.name);
      ASSERT_TRUE(name.ok()) << name.status();
      mapped.insert(name->hf);
      const SafetensorsTensorInfo* info = file->Find(name->hf);
      ASSERT_NE(info, nullptr) << name->hf;
      EXPECT_EQ(info->shape, HfShape(*name->rule, t.shape, 96)) << name->hf;
    }
  }
  EXPECT_EQ(saved, mapped);
}

TEST(HfNamesTest, Gpt2TableMatchesTransformers) {
  absl::StatusOr<const HfArchitecture*> arch = FindHfArchitecture("gpt2", "test");
  ASSERT_TRUE(arch.ok());
  ModelConfig m{.n_layer = 2, .n_head = 4, .d_model = 64, .seq_len = 32, .vocab_size = 96};
  ExpectSameNames(GoldenDir("hf_gpt2"), Gpt2Layouts(m), **arch);

  absl::StatusOr<HfTensorName> c_attn = ToHfName(**arch, "h.11.attn.c_attn.weight");
  ASSERT_TRUE(c_attn.ok());
  EXPECT_EQ(c_attn->hf, "transformer.h.11.attn.c_attn.weight");
  EXPECT_EQ(c_attn->rule->layout, HfLayout::kTranspose);
  EXPECT_EQ(HfShape(*c_attn->rule, {192, 64}, 96), (std::vector<int64_t>{64, 192}));
  absl::StatusOr<HfTensorName> wte = ToHfName(**arch, "wte");
  ASSERT_TRUE(wte.ok());
  EXPECT_EQ(HfShape(*wte->rule, {128, 64}, 96), (std::vector<int64_t>{96, 64}));
  EXPECT_TRUE(IsSkippedHfTensor(**arch, "transformer.h.3.attn.bias"));
  EXPECT_TRUE(IsSkippedHfTensor(**arch, "lm_head.weight"));
  EXPECT_FALSE(IsSkippedHfTensor(**arch, "transformer.h.3.attn.c_attn.bias"));
  EXPECT_FALSE(ToHfName(**arch, "h.x.ln_1.weight").ok());
  EXPECT_FALSE(ToHfName(**arch, "layers.0.mlp.up_proj.weight").ok());
}

TEST(HfNamesTest, LlamaTableMatchesTransformers) {
  absl::StatusOr<const HfArchitecture*> arch = FindHfArchitecture("llama", "test");
  ASSERT_TRUE(arch.ok());
  ExpectSameNames(GoldenDir("hf_llama"), LlamaLayouts(testing_util::GoldenLlamaConfig()), **arch);
  absl::StatusOr<HfTensorName> head = ToHfName(**arch, "lm_head.weight");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->hf, "lm_head.weight");
  EXPECT_EQ(head->tied_to, "model.embed_tokens.weight");
  absl::StatusOr<HfTensorName> q = ToHfName(**arch, "layers.7.self_attn.q_proj.weight");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->hf, "model.layers.7.self_attn.q_proj.weight");
  EXPECT_EQ(q->rule->layout, HfLayout::kSame);
}

TEST(HfNamesTest, UnknownModelTypeIsNamed) {
  absl::StatusOr<const HfArchitecture*> arch = FindHfArchitecture("mistral", "x/config.json");
  ASSERT_FALSE(arch.ok());
  EXPECT_NE(arch.status().message().find("\"mistral\""), std::string::npos) << arch.status();
  EXPECT_NE(arch.status().message().find("x/config.json"), std::string::npos) << arch.status();
  absl::StatusOr<HfModelInfo> info = ParseHfConfig(R"({"model_type": "bert"})", "c.json");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(info.status().message().find("\"bert\""), std::string::npos) << info.status();
}

TEST(HfConfigTest, ReadsTheCommittedConfigs) {
  const std::string gpt2_path = GoldenDir("hf_gpt2") + "/config.json";
  absl::StatusOr<std::string> text = ReadFileToString(gpt2_path);
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<HfModelInfo> gpt2 = ParseHfConfig(*text, gpt2_path);
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  EXPECT_EQ(gpt2->model.type, "gpt2");
  EXPECT_EQ(gpt2->model.n_layer, 2);
  EXPECT_EQ(gpt2->model.n_head, 4);
  EXPECT_EQ(gpt2->model.d_model, 64);
  EXPECT_EQ(gpt2->model.seq_len, 32);
  EXPECT_EQ(gpt2->model.vocab_size, 96);
  EXPECT_EQ(gpt2->dtype, "float32");

  const std::string llama_path = GoldenDir("hf_llama") + "/config.json";
  text = ReadFileToString(llama_path);
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<HfModelInfo> llama = ParseHfConfig(*text, llama_path);
  ASSERT_TRUE(llama.ok()) << llama.status();
  const ModelConfig want = testing_util::GoldenLlamaConfig();
  EXPECT_EQ(llama->model.type, "llama");
  EXPECT_EQ(llama->model.n_layer, want.n_layer);
  EXPECT_EQ(llama->model.n_head, want.n_head);
  EXPECT_EQ(llama->model.n_kv_head, want.n_kv_head);
  EXPECT_EQ(llama->model.d_model, want.d_model);
  EXPECT_EQ(llama->model.ffn_hidden, want.ffn_hidden);
  EXPECT_EQ(llama->model.seq_len, want.seq_len);
  EXPECT_EQ(llama->model.vocab_size, want.vocab_size);
  EXPECT_EQ(llama->model.rope_theta, 10000.0);  // from rope_parameters (transformers 5)
  EXPECT_EQ(llama->model.rms_norm_eps, 1e-5);
  EXPECT_FALSE(llama->tie_word_embeddings);
}

TEST(HfConfigTest, WrittenConfigReadsBackTheSameModel) {
  ModelConfig llama = testing_util::GoldenLlamaConfig();
  llama.rope_theta = 500000.0;
  ModelConfig gpt2{.n_layer = 3, .n_head = 2, .d_model = 16, .seq_len = 8, .vocab_size = 50};
  for (const ModelConfig& m : {gpt2, llama}) {
    absl::StatusOr<nlohmann::json> json = HfConfigJson(m, "bfloat16");
    ASSERT_TRUE(json.ok()) << json.status();
    absl::StatusOr<HfModelInfo> back = ParseHfConfig(json->dump(), "written");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->model.type, m.type);
    EXPECT_EQ(back->model.n_layer, m.n_layer);
    EXPECT_EQ(back->model.n_head, m.n_head);
    EXPECT_EQ(back->model.d_model, m.d_model);
    EXPECT_EQ(back->model.seq_len, m.seq_len);
    EXPECT_EQ(back->model.vocab_size, m.vocab_size);
    EXPECT_EQ(back->dtype, "bfloat16");
    if (m.type == "llama") {
      EXPECT_EQ(back->model.n_kv_head, m.n_kv_head);
      EXPECT_EQ(back->model.ffn_hidden, m.ffn_hidden);
      EXPECT_EQ(back->model.rope_theta, m.rope_theta);
      EXPECT_EQ(back->model.rms_norm_eps, m.rms_norm_eps);
    }
  }
  ModelConfig other = gpt2;
  other.type = "mamba";
  EXPECT_FALSE(HfConfigJson(other, "float32").ok());
}

// Each config is refused with a message naming the key.
TEST(HfConfigTest, UnsupportedSettingsAreNamed) {
  const std::string gpt2 =
      R"("model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 32,
         "vocab_size": 96)";
  const std::string llama =
      R"("model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4,
         "hidden_size": 32, "intermediate_size": 64, "max_position_embeddings": 32,
         "vocab_size": 96)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{}", "model_type"},
      {"[1, 2]", "not a JSON object"},
      {R"({"model_type": "gpt2", "n_head": 4, "n_embd": 64, "n_positions": 32,
           "vocab_size": 96})",
       "\"n_layer\" is missing"},
      {"{" + gpt2 + R"(, "n_layer": 0})", "n_layer"},
      {R"({"model_type": "gpt2", "n_layer": 2, "n_head": 5, "n_embd": 64, "n_positions": 32,
           "vocab_size": 96})",
       "n_embd"},
      {"{" + gpt2 + R"(, "activation_function": "relu"})", "activation_function"},
      {"{" + gpt2 + R"(, "layer_norm_epsilon": 1e-6})", "layer_norm_epsilon"},
      {"{" + gpt2 + R"(, "n_inner": 100})", "n_inner"},
      {"{" + gpt2 + R"(, "tie_word_embeddings": false})", "tie_word_embeddings"},
      {"{" + gpt2 + R"(, "scale_attn_by_inverse_layer_idx": true})",
       "scale_attn_by_inverse_layer_idx"},
      {"{" + llama + R"(, "num_key_value_heads": 3})", "num_key_value_heads"},
      {"{" + llama + R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})",
       "rope_scaling"},
      {"{" + llama + R"(, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}})",
       "rope_parameters"},
      {"{" + llama + R"(, "hidden_act": "gelu"})", "hidden_act"},
      {"{" + llama + R"(, "attention_bias": true})", "attention_bias"},
      {"{" + llama + R"(, "head_dim": 16})", "head_dim"},
  };
  for (const auto& [json, key] : cases) {
    absl::StatusOr<HfModelInfo> info = ParseHfConfig(json, "dir/config.json");
    ASSERT_FALSE(info.ok()) << json;
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_NE(info.status().message().find(key), std::string::npos)
        << json << " -> " << info.status();
    EXPECT_NE(info.status().message().find("dir/config.json"), std::string::npos) << info.status();
  }
  ASSERT_TRUE(ParseHfConfig("{" + gpt2 + "}", "ok").ok());
  ASSERT_TRUE(ParseHfConfig("{" + llama + "}", "ok").ok());
}

}  // namespace
}  // namespace spillway
