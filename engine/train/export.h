// Consolidating a checkpoint into one model file.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/config/config.h"

namespace spillway {

struct ExportReport {
  int64_t step = 0;
  int saved_ranks = 0;
  size_t tensors = 0;
  size_t parameters = 0;
};

// Writes the parameters of the checkpoint at `checkpoint` (a step directory or a root), which
// must hold `model`, as one fp32 safetensors file at `output`, named as in the model's header
// (engine/model/gpt2.h, llama.h; without the vocabulary's padding rows), with the model shape
// and step in the metadata. Holds one Unit's parameters in memory at a time, whatever number of
// ranks wrote the checkpoint; `output` appears only when complete.
absl::StatusOr<ExportReport> ExportCheckpoint(const ModelConfig& model,
                                              const std::string& checkpoint,
                                              const std::string& output);

}  // namespace spillway
