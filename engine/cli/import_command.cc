#include <cstdio>

#include "engine/cli/args.h"
#include "engine/cli/commands.h"
#include "engine/hf/hf_model.h"
#include "engine/train/sharded_checkpoint.h"

namespace spillway {

const char kImportUsage[] =
    "usage: spillway import HF_DIR OUT_DIR\n"
    "  Converts a Hugging Face model folder (config.json and model.safetensors, or shards with\n"
    "  model.safetensors.index.json; gpt2 or llama) into a spillway checkpoint under OUT_DIR at\n"
    "  step 0,"
    "  parameters only: `spillway eval CONFIG --checkpoint OUT_DIR` reads it. Prints the\n"
    "  \"model\" section a config needs for it.\n";

int ImportCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseArgs(argv, {});
  if (!args.ok() || args->positional.size() != 2) {
    if (!args.ok()) std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    std::fputs(kImportUsage, stderr);
    return kExitUsage;
  }
  absl::StatusOr<HfImportReport> report =
      ImportHfCheckpoint(args->positional[0], args->positional[1]);
  if (!report.ok()) {
    std::fprintf(stderr, "spillway: %s\n", std::string(report.status().message()).c_str());
    return kExitFailure;
  }
  const nlohmann::json section = CheckpointModelJson(report->model);
  std::printf("imported %s: %zu tensors, %zu parameters -> %s\nconfig \"model\" section: %s\n",
              args->positional[0].c_str(), report->tensors, report->parameters,
              report->step_dir.c_str(), section.dump().c_str());
  return kExitOk;
}

}  // namespace spillway
