// Writing a Hugging Face model folder from Units: config.json and the weights under HF names
// and layouts (engine/hf/hf_names.h: transposed where HF transposes, padding rows dropped), as
// one model.safetensors or, above max_shard_bytes, as model-0000k-of-0000n.safetensors shards
// with model.safetensors.index.json, as save_pretrained writes them.
//
// One Unit's parameters are in memory at a time: `source` fills them, the Unit's tensors go
// to the shard being written, and a shard is finished when its last tensor is in. The folder
// is assembled as "<dir>.tmp" and renamed to `dir` when complete; `dir` must not exist or be
// empty.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/safetensors.h"
#include "core/unit_layout.h"
#include "engine/config/config.h"

namespace spillway {

struct HfWriteOptions {
  SafetensorsDtype dtype = SafetensorsDtype::kF32;  // kF32 or kBF16
  uint64_t max_shard_bytes = 5'000'000'000;         // save_pretrained's default "5GB"
  std::map<std::string, std::string> metadata;      // added to every shard's "__metadata__"
};

struct HfWriteReport {
  size_t tensors = 0;
  size_t parameters = 0;
  int shards = 0;
  uint64_t bytes = 0;  // tensor data, all shards
};

// Fills `dst` (units[unit].numel() floats, host memory) with that Unit's parameters.
using HfUnitSource = std::function<absl::Status(int unit, std::span<float> dst)>;

// `units` are the layouts of `model` (whose type picks the name table).
absl::StatusOr<HfWriteReport> WriteHfFolder(const ModelConfig& model,
                                            const std::vector<UnitLayout>& units,
                                            const HfUnitSource& source, const std::string& dir,
                                            const HfWriteOptions& options = {});

}  // namespace spillway
