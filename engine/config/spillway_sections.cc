// spillway's own sections: model, data, trainer, checkpoint, log.
#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "core/unit_layout.h"
#include "engine/config/sections.h"

namespace spillway::config_internal {
namespace {

constexpr int kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

absl::Status ParseSynthetic(const Json& value, SyntheticDataConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "data.synthetic"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"seed", "train_tokens", "val_tokens"}));
  SPW_RETURN_IF_ERROR(r.Uint64("seed", &out->seed));
  SPW_RETURN_IF_ERROR(r.Int("train_tokens", &out->train_tokens, 1, kInt64Max, true));
  SPW_RETURN_IF_ERROR(r.Int("val_tokens", &out->val_tokens, 0, kInt64Max));
  return absl::OkStatus();
}

// The Llama keys (engine/model/llama_layout.h ValidateLlamaConfig says why each rule holds).
absl::Status ParseLlamaKeys(const ObjectReader& r, ModelConfig* out) {
  SPW_RETURN_IF_ERROR(r.Int("n_kv_head", &out->n_kv_head, 0, kInt32Max));
  SPW_RETURN_IF_ERROR(r.Int("ffn_hidden", &out->ffn_hidden, 0, kInt32Max));
  SPW_RETURN_IF_ERROR(r.Double("rope_theta", &out->rope_theta, DoubleRange::Above(0)));
  SPW_RETURN_IF_ERROR(r.Double("rms_norm_eps", &out->rms_norm_eps, DoubleRange::Above(0)));
  const int64_t kv = out->n_kv_head > 0 ? out->n_kv_head : out->n_head;
  if (out->n_head % kv != 0) {
    return KeyError(r.KeyPath("n_kv_head"),
                    absl::StrCat("must divide model.n_head (", out->n_head, "), found ", kv,
                                 ": each key/value head serves n_head / n_kv_head query heads"));
  }
  const int64_t C = out->d_model, head_size = C / out->n_head;
  if (head_size % 2 != 0) {
    return KeyError(r.KeyPath("n_head"),
                    absl::StrCat("the head size d_model / n_head must be even (rotary embeddings "
                                 "rotate pairs of channels), found ",
                                 C, " / ", out->n_head, " = ", head_size));
  }
  const int64_t align = static_cast<int64_t>(UnitLayout::kAlignElems);
  if (C * head_size % align != 0) {
    return KeyError(r.KeyPath("d_model"),
                    absl::StrCat("d_model * head size must be a multiple of ", align,
                                 " (q/k/v_proj are stored back to back), found ", C, " * ",
                                 head_size, "; choose d_model and n_head that make it so"));
  }
  const int64_t F = out->ffn_hidden > 0 ? out->ffn_hidden : 4 * C;
  if (C * F % align != 0) {
    return KeyError(
        r.KeyPath("ffn_hidden"),
        absl::StrCat("d_model * ffn_hidden must be a multiple of ", align,
                     " (gate_proj and up_proj are stored back to back), found ", C, " * ", F));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseModel(const Json& value, ModelConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "model"));
  SPW_RETURN_IF_ERROR(
      r.CheckKeys({"type", "n_layer", "n_head", "d_model", "seq_len", "vocab_size", "init_std",
                   "init_from", "n_kv_head", "ffn_hidden", "rope_theta", "rms_norm_eps"}));
  SPW_RETURN_IF_ERROR(r.String("type", &out->type, {"gpt2", "llama"}));
  SPW_RETURN_IF_ERROR(r.Int("n_layer", &out->n_layer, 1, kInt32Max, true));
  SPW_RETURN_IF_ERROR(r.Int("n_head", &out->n_head, 1, kInt32Max, true));
  SPW_RETURN_IF_ERROR(r.Int("d_model", &out->d_model, 1, kInt32Max, true));
  SPW_RETURN_IF_ERROR(r.Int("seq_len", &out->seq_len, 1, kInt32Max, true));
  SPW_RETURN_IF_ERROR(r.Int("vocab_size", &out->vocab_size, 2, kInt32Max, true));
  SPW_RETURN_IF_ERROR(r.Double("init_std", &out->init_std, DoubleRange::Above(0)));
  SPW_RETURN_IF_ERROR(r.NonEmptyString("init_from", &out->init_from));
  if (out->d_model % out->n_head != 0) {
    return KeyError(r.KeyPath("d_model"), absl::StrCat("must be divisible by model.n_head (",
                                                       out->n_head, "), found ", out->d_model));
  }
  if (out->type == "llama") return ParseLlamaKeys(r, out);
  for (absl::string_view key : {"n_kv_head", "ffn_hidden", "rope_theta", "rms_norm_eps"}) {
    if (r.Has(key)) {
      return KeyError(r.KeyPath(key),
                      absl::StrCat("is a Llama key; model.type is \"", out->type,
                                   "\" (set model.type to \"llama\" or remove it)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseData(const Json& value, DataConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "data"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"train_path", "val_path", "synthetic"}));
  const bool files = r.Has("train_path") || r.Has("val_path");
  if (r.Has("synthetic") && files) {
    return KeyError("data",
                    "give either data.train_path (and optionally data.val_path) or "
                    "data.synthetic, not both");
  }
  if (r.Has("synthetic")) {
    out->synthetic = true;
    return ParseSynthetic(*r.Find("synthetic"), &out->synthetic_config);
  }
  if (!r.Has("train_path")) {
    if (r.Has("val_path")) return KeyError("data.train_path", "is required with data.val_path");
    return KeyError("data",
                    "needs data.train_path (token files) or data.synthetic (built-in synthetic "
                    "data); found neither");
  }
  SPW_RETURN_IF_ERROR(r.NonEmptyString("train_path", &out->train_path));
  SPW_RETURN_IF_ERROR(r.NonEmptyString("val_path", &out->val_path));
  return absl::OkStatus();
}

absl::Status ParseTrainer(const Json& value, TrainerConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "trainer"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"steps", "seed", "backend", "eval_interval", "eval_batches",
                                   "comm_timeout_s", "matmul_autotune", "cuda_graphs"}));
  SPW_RETURN_IF_ERROR(r.Bool("matmul_autotune", &out->matmul_autotune));
  SPW_RETURN_IF_ERROR(r.Bool("cuda_graphs", &out->cuda_graphs));
  SPW_RETURN_IF_ERROR(r.Double("comm_timeout_s", &out->comm_timeout_s, DoubleRange::AtLeast(0)));
  SPW_RETURN_IF_ERROR(r.Int("steps", &out->steps, 1, kInt64Max, true));
  SPW_RETURN_IF_ERROR(r.Uint64("seed", &out->seed));
  if (const Json* v = r.Find("backend"); v != nullptr) {
    SPW_ASSIGN_OR_RETURN(out->backend, ReadString(*v, r.KeyPath("backend"), {"cpu", "cuda"}));
  }
  SPW_RETURN_IF_ERROR(r.Int("eval_interval", &out->eval_interval, 0, kInt64Max));
  SPW_RETURN_IF_ERROR(r.Int("eval_batches", &out->eval_batches, 1, kInt64Max));
  return absl::OkStatus();
}

absl::Status ParseCheckpoint(const Json& value, CheckpointConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "checkpoint"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"dir", "interval", "keep_last"}));
  SPW_RETURN_IF_ERROR(r.NonEmptyString("dir", &out->dir, /*required=*/true));
  SPW_RETURN_IF_ERROR(r.Int("interval", &out->interval, 0, kInt64Max));
  SPW_RETURN_IF_ERROR(r.Int("keep_last", &out->keep_last, 0, kInt64Max));
  return absl::OkStatus();
}

absl::Status ParseLog(const Json& value, LogConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "log"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"metrics_path"}));
  SPW_RETURN_IF_ERROR(r.NonEmptyString("metrics_path", &out->metrics_path));
  return absl::OkStatus();
}

}  // namespace spillway::config_internal
