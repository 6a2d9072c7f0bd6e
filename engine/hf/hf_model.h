// Hugging Face folders in and out of spillway's models and checkpoints:
//   - LoadHfParams: a HF folder straight into a built model's parameters (model.init_from);
//   - ImportHfCheckpoint: a HF folder into a spillway checkpoint at step 0 with parameters
//     only (what Trainer::LoadParams and `spillway eval` read);
//   - ExportHfFromCheckpoint: a checkpoint (any rank count) into a HF folder.
// Loading and export hold one Unit's parameters at a time; import holds the whole model's
// fp32 parameters (a checkpoint's rank file is written in one go).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/unit_layout.h"
#include "engine/config/config.h"
#include "engine/hf/hf_folder.h"
#include "engine/hf/hf_writer.h"
#include "engine/model/model.h"

namespace spillway {

// The Unit layouts of `model`, by model.type; InvalidArgument for a type this build has no
// model for.
absl::StatusOr<std::vector<UnitLayout>> ModelLayouts(const ModelConfig& model);

// Copies the folder's weights into `model`'s parameters (through the model's backend; at ZeRO
// stage 3 this rank's shard), one Unit at a time. The folder must hold the same architecture
// and sizes (its n_positions may exceed the model's seq_len: the first rows of GPT-2's
// position table are used); FailedPrecondition naming both otherwise.
absl::Status LoadHfParams(const HfFolder& folder, Model& model);

struct HfImportReport {
  ModelConfig model;     // from config.json: the "model" section a config must have to load it
  std::string step_dir;  // the checkpoint written
  size_t tensors = 0;
  size_t parameters = 0;
};

// Writes the weights of the HF folder `hf_dir` as a checkpoint under the root `out_root`
// (step 0, one rank, parameters only). The folder must not hold tensors the model would
// drop; `out_root` must not hold checkpoints already. One Unit is in memory at a time.
absl::StatusOr<HfImportReport> ImportHfCheckpoint(const std::string& hf_dir,
                                                  const std::string& out_root);

struct HfExportReport {
  int64_t step = 0;
  int saved_ranks = 0;
  HfWriteReport written;
};

// Writes the parameters of the checkpoint at `checkpoint` (step directory or root), which must
// hold `model`, as the HF folder `out_dir` (engine/hf/hf_writer.h).
absl::StatusOr<HfExportReport> ExportHfFromCheckpoint(const ModelConfig& model,
                                                      const std::string& checkpoint,
                                                      const std::string& out_dir,
                                                      const HfWriteOptions& options = {});

}  // namespace spillway
