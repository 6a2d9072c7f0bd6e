#include "engine/train/export.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/safetensors_stream.h"
#include "core/status.h"
#include "engine/hf/hf_model.h"
#include "engine/model/model.h"
#include "engine/train/sharded_checkpoint.h"

namespace spillway {
namespace {

// The elements of `t` that are model parameters: without the vocabulary's padding rows.
size_t ExportedNumel(const TensorSpec& t, const ModelConfig& model) {
  return HasVocabPaddingRows(t.name) ? static_cast<size_t>(model.vocab_size) * model.d_model
                                     : t.numel;
}

}  // namespace

absl::StatusOr<ExportReport> ExportCheckpoint(const ModelConfig& model,
                                              const std::string& checkpoint,
                                              const std::string& output) {
  SPW_ASSIGN_OR_RETURN(std::vector<CheckpointReader> files,
                       CheckpointReader::OpenAllRanks(checkpoint));
  SPW_RETURN_IF_ERROR(CheckCheckpointModel(files, model));
  SPW_ASSIGN_OR_RETURN(const std::vector<UnitLayout> units, ModelLayouts(model));
  ExportReport report;
  report.step = files.front().step();
  report.saved_ranks = static_cast<int>(files.size());

  std::vector<SafetensorsStreamWriter::Tensor> tensors;
  for (const UnitLayout& unit : units) {
    for (const TensorSpec& t : unit.tensors()) {
      std::vector<int64_t> shape = t.shape;
      if (HasVocabPaddingRows(t.name)) shape[0] = model.vocab_size;
      tensors.push_back({t.name, SafetensorsDtype::kF32, shape});
    }
  }
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"spillway_model", CheckpointModelJson(model).dump()},
      {"spillway_step", absl::StrCat(report.step)}};
  SPW_ASSIGN_OR_RETURN(SafetensorsStreamWriter writer,
                       SafetensorsStreamWriter::Create(output, std::move(tensors), metadata));
  std::vector<float> params;
  for (const UnitLayout& unit : units) {
    params.assign(unit.numel(), 0.0f);
    SPW_RETURN_IF_ERROR(LoadFlatRange(files, unit.name() + "/params", unit.numel(), 0, unit.numel(),
                                      params.data()));
    for (const TensorSpec& t : unit.tensors()) {
      const size_t n = ExportedNumel(t, model);
      SPW_RETURN_IF_ERROR(writer.Append(std::as_bytes(std::span(params.data() + t.offset, n))));
      ++report.tensors;
      report.parameters += n;
    }
  }
  SPW_RETURN_IF_ERROR(writer.Finish());
  return report;
}

}  // namespace spillway
