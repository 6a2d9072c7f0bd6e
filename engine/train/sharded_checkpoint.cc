#include "engine/train/sharded_checkpoint.h"

#include <algorithm>
#include <span>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "partitioner/shard.h"

namespace spillway {

absl::Status LoadFlatRange(const std::vector<CheckpointReader>& files, const std::string& name,
                           size_t numel, size_t begin, size_t end, float* dst) {
  const int saved_world = static_cast<int>(files.size());
  std::vector<float> piece;
  for (int r = 0; r < saved_world; ++r) {
    const ShardRange saved = ShardOf(numel, saved_world, r);
    const size_t lo = std::max(begin, saved.begin), hi = std::min(end, saved.end);
    if (lo >= hi) continue;
    piece.resize(saved.shard_numel);
    SPW_RETURN_IF_ERROR(files[r].ReadBlob(name, std::as_writable_bytes(std::span(piece))));
    std::copy(piece.begin() + (lo - saved.begin), piece.begin() + (hi - saved.begin),
              dst + (lo - begin));
  }
  return absl::OkStatus();
}

nlohmann::json CheckpointModelJson(const ModelConfig& m) {
  nlohmann::json json = {{"type", m.type},       {"n_layer", m.n_layer},
                         {"n_head", m.n_head},   {"d_model", m.d_model},
                         {"seq_len", m.seq_len}, {"vocab_size", m.vocab_size}};
  if (m.type == "llama") {
    // Defaults resolved, so that 0 ("the default") and the value it stands for are one model.
    json["n_kv_head"] = m.n_kv_head > 0 ? m.n_kv_head : m.n_head;
    json["ffn_hidden"] = m.ffn_hidden > 0 ? m.ffn_hidden : 4 * m.d_model;
    json["rope_theta"] = m.rope_theta;
    json["rms_norm_eps"] = m.rms_norm_eps;
  }
  return json;
}

absl::Status CheckCheckpointModel(const std::vector<CheckpointReader>& files,
                                  const ModelConfig& model) {
  const nlohmann::json saved = files.front().meta().value("model", nlohmann::json());
  if (saved == CheckpointModelJson(model)) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("checkpoint ", files.front().dir(), " holds a different model (", saved.dump(),
                   ") than the config's model section (", CheckpointModelJson(model).dump(), ")"));
}

}  // namespace spillway
