#include "engine/hf/hf_model.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/rank_file.h"
#include "engine/model/gpt2_layout.h"
#include "engine/model/llama_layout.h"
#include "engine/train/sharded_checkpoint.h"
#include "partitioner/shard.h"

namespace spillway {
namespace {

std::string Sizes(const ModelConfig& m) {
  std::string sizes =
      absl::StrCat(m.type, " n_layer=", m.n_layer, " n_head=", m.n_head, " d_model=", m.d_model,
                   " seq_len=", m.seq_len, " vocab_size=", m.vocab_size);
  if (m.type == "llama") {
    const LlamaDims d = LlamaDimsOf(m);
    absl::StrAppend(&sizes, " n_kv_head=", d.NKV, " ffn_hidden=", d.F, " rope_theta=", m.rope_theta,
                    " rms_norm_eps=", m.rms_norm_eps);
  }
  return sizes;
}

// `have` (a folder's) can be loaded into a model of shape `want`: everything equal but seq_len,
// which may be longer (Llama's defaults resolved: n_kv_head 0 is n_head, ffn_hidden 0 is 4C).
bool Loadable(const ModelConfig& have, const ModelConfig& want) {
  if (have.type != want.type || have.n_layer != want.n_layer || have.n_head != want.n_head ||
      have.d_model != want.d_model || have.vocab_size != want.vocab_size ||
      have.seq_len < want.seq_len) {
    return false;
  }
  if (want.type != "llama") return true;
  const LlamaDims h = LlamaDimsOf(have), w = LlamaDimsOf(want);
  return h.NKV == w.NKV && h.F == w.F && have.rope_theta == want.rope_theta &&
         have.rms_norm_eps == want.rms_norm_eps;
}

}  // namespace

absl::StatusOr<std::vector<UnitLayout>> ModelLayouts(const ModelConfig& model) {
  if (model.type == "gpt2") return Gpt2Layouts(model);
  if (model.type == "llama") return LlamaLayouts(model);
  return absl::InvalidArgumentError(absl::StrCat(
      "model.type \"", model.type, "\": this build has no such model to load weights into"));
}

absl::Status LoadHfParams(const HfFolder& folder, Model& model) {
  const ModelConfig& want = model.config();
  const ModelConfig& have = folder.info().model;
  if (!Loadable(have, want)) {
    return absl::FailedPreconditionError(
        absl::StrCat(folder.dir(), " holds a different model (", Sizes(have),
                     ") than the config's model "
                     "section (",
                     Sizes(want), "); a shorter seq_len is allowed, nothing else may differ"));
  }
  std::vector<float> host;
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    host.assign(unit.numel(), 0.0f);
    SPW_RETURN_IF_ERROR(folder.LoadUnit(unit.layout, want, std::span<float>(host)));
    SPW_RETURN_IF_ERROR(model.SetUnitParams(u, host));
  }
  return absl::OkStatus();
}

absl::StatusOr<HfImportReport> ImportHfCheckpoint(const std::string& hf_dir,
                                                  const std::string& out_root) {
  SPW_ASSIGN_OR_RETURN(const HfFolder folder, HfFolder::Open(hf_dir));
  HfImportReport report;
  report.model = folder.info().model;
  SPW_ASSIGN_OR_RETURN(const std::vector<UnitLayout> units, ModelLayouts(report.model));
  const std::vector<std::string> unused = folder.UnusedTensors(units);
  if (!unused.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        hf_dir, " holds tensors spillway's ", report.model.type,
        " has no place for (importing would drop them): ", absl::StrJoin(unused, ", ")));
  }
  std::error_code ec;
  if (std::filesystem::exists(out_root, ec)) {
    SPW_ASSIGN_OR_RETURN(const std::vector<CheckpointDirEntry> existing, ListCheckpoints(out_root));
    if (!existing.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(out_root, " already holds checkpoints (",
                                                        existing.back().name,
                                                        "); import into a new folder"));
    }
  }
  // One rank: each Unit's blob is its whole flat buffer (padded to the one shard), streamed
  // into the rank file one Unit at a time, so the model never has to fit in memory at once.
  std::vector<RankFileStreamWriter::PlannedBlob> plan;
  for (const UnitLayout& unit : units) {
    plan.push_back({unit.name() + "/params", ShardOf(unit.numel(), 1, 0).shard_numel * 4});
    for (const TensorSpec& t : unit.tensors()) {  // counted as HF holds them: no padding
      SPW_ASSIGN_OR_RETURN(const HfTensorName name, ToHfName(*folder.info().arch, t.name));
      size_t n = 1;
      for (int64_t d : HfShape(*name.rule, t.shape, report.model.vocab_size)) n *= d;
      report.parameters += n;
      ++report.tensors;
    }
  }
  CheckpointWriteOptions options;
  options.root = out_root;
  options.step = 0;
  SPW_ASSIGN_OR_RETURN(const std::string tmp_dir, PrepareCheckpoint(options));
  SPW_ASSIGN_OR_RETURN(
      RankFileStreamWriter writer,
      RankFileStreamWriter::Create(tmp_dir + "/" + CheckpointRankFileName(0, 1), 0, 1, plan));
  std::vector<float> params;
  for (size_t u = 0; u < units.size(); ++u) {
    params.assign(ShardOf(units[u].numel(), 1, 0).shard_numel, 0.0f);
    SPW_RETURN_IF_ERROR(
        folder.LoadUnit(units[u], report.model, std::span<float>(params.data(), units[u].numel())));
    SPW_RETURN_IF_ERROR(writer.WriteBlob(u, std::as_bytes(std::span(params))));
  }
  SPW_RETURN_IF_ERROR(writer.Finish());
  const nlohmann::json meta = {{"step", 0},
                               {"model", CheckpointModelJson(report.model)},
                               {"imported_from", hf_dir},
                               {"world_size", 1}};
  SPW_ASSIGN_OR_RETURN(report.step_dir, CommitCheckpoint(options, meta));
  return report;
}

absl::StatusOr<HfExportReport> ExportHfFromCheckpoint(const ModelConfig& model,
                                                      const std::string& checkpoint,
                                                      const std::string& out_dir,
                                                      const HfWriteOptions& options) {
  SPW_ASSIGN_OR_RETURN(const std::vector<CheckpointReader> files,
                       CheckpointReader::OpenAllRanks(checkpoint));
  SPW_RETURN_IF_ERROR(CheckCheckpointModel(files, model));
  SPW_ASSIGN_OR_RETURN(const std::vector<UnitLayout> units, ModelLayouts(model));
  HfExportReport report;
  report.step = files.front().step();
  report.saved_ranks = static_cast<int>(files.size());
  HfWriteOptions with_step = options;
  with_step.metadata["spillway_step"] = absl::StrCat(report.step);
  const HfUnitSource source = [&](int u, std::span<float> dst) {
    return LoadFlatRange(files, units[u].name() + "/params", units[u].numel(), 0, units[u].numel(),
                         dst.data());
  };
  SPW_ASSIGN_OR_RETURN(report.written, WriteHfFolder(model, units, source, out_dir, with_step));
  return report;
}

}  // namespace spillway
