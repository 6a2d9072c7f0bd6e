// Reading Unit state from checkpoints written by any number of ranks.
//
// Each rank's file holds, per Unit and kind of state, the rank's shard of the Unit's flat
// buffer (partitioner/shard.h), as a blob named "<unit>/<kind>" ("params", "exp_avg",
// "exp_avg_sq"). A flat range is assembled from the shards that overlap it, so a checkpoint
// written by N ranks loads on M.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/config/config.h"
#include "nlohmann/json.hpp"

namespace spillway {

// Fills dst (host, end - begin floats) with flat elements [begin, end) of blob `name` of a
// Unit of `numel` elements, from `files` (every rank file of the checkpoint, in rank order).
// Each overlapping shard is read whole, its CRC checked.
absl::Status LoadFlatRange(const std::vector<CheckpointReader>& files, const std::string& name,
                           size_t numel, size_t begin, size_t end, float* dst);

// The model shape a checkpoint's meta.json records ("model"): loading checks it matches. GPT-2:
// type, n_layer, n_head, d_model, seq_len, vocab_size; Llama also n_kv_head, ffn_hidden (both
// resolved: never 0), rope_theta and rms_norm_eps.
nlohmann::json CheckpointModelJson(const ModelConfig& model);

// OK if the checkpoint read by `files` holds `model`; FailedPrecondition naming both otherwise.
absl::Status CheckCheckpointModel(const std::vector<CheckpointReader>& files,
                                  const ModelConfig& model);

}  // namespace spillway
