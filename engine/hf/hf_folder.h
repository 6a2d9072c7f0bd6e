// Reading a Hugging Face model folder: config.json and the weights, either one
// model.safetensors or shards named by model.safetensors.index.json ("weight_map"), as
// save_pretrained writes them. Tensors in F32, F16, BF16 or F64 are converted to fp32.
//
// Open() reads config.json (engine/hf/hf_config.h) and every safetensors header, and checks
// that each shard the index names exists and holds the tensors the index puts there. The data
// stay in the files (mapped) until LoadUnit() reads one Unit's tensors into that Unit's flat
// buffer, so a model larger than host memory loads one Unit at a time.
//
// Names are mapped by the architecture's table (engine/hf/hf_names.h); a tensor the table puts
// under the base model ("transformer.wte.weight") is also found without that prefix
// ("wte.weight"), as files saved from the base model class have it.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/safetensors.h"
#include "core/unit_layout.h"
#include "engine/hf/hf_config.h"

namespace spillway {

class HfFolder {
 public:
  // Errors name the folder and the missing or bad file, tensor or key.
  static absl::StatusOr<HfFolder> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const HfModelInfo& info() const { return info_; }
  // The weight files, in the order opened.
  std::vector<std::string> files() const;

  // Fills `dst` (layout.numel() floats) with the Unit's parameters, in spillway's layout
  // (transposed where the table says, padding rows and alignment gaps zero). `model` is the
  // model the layout belongs to: its vocab_size must be the folder's, its seq_len at most the
  // folder's (a shorter position table takes the first rows). A missing tensor, a wrong shape
  // (both shapes given) or an unsupported dtype is an error naming the tensor and its file.
  absl::Status LoadUnit(const UnitLayout& layout, const ModelConfig& model,
                        std::span<float> dst) const;

  // The folder's tensors that no tensor of `layouts` reads and the table does not skip: a
  // non-empty answer means importing into these layouts would drop weights.
  std::vector<std::string> UnusedTensors(const std::vector<UnitLayout>& layouts) const;

 private:
  HfFolder() = default;
  // The file holding HF tensor `name` (with or without the base prefix), or null; sets *found
  // to the name as stored.
  const SafetensorsFile* Lookup(const std::string& name, std::string* found) const;

  std::string dir_;
  HfModelInfo info_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;  // stored name -> its file
};

}  // namespace spillway
