#include <cstdio>

#include "engine/cli/args.h"
#include "engine/cli/commands.h"
#include "engine/config/config.h"
#include "engine/train/export.h"

namespace spillway {

const char kExportUsage[] =
    "usage: spillway export CONFIG --checkpoint DIR --output FILE.safetensors\n"
    "  Writes the parameters of checkpoint DIR (a step directory or a checkpoint root), as\n"
    "  trained with CONFIG's model, into one fp32 safetensors file, one Unit at a time,\n"
    "  whatever number of ranks wrote it.\n";

int ExportCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseArgs(argv, {"checkpoint", "output"});
  if (!args.ok() || args->positional.size() != 1 || !args->Has("checkpoint") ||
      !args->Has("output")) {
    if (!args.ok()) std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    std::fputs(kExportUsage, stderr);
    return kExitUsage;
  }
  absl::StatusOr<Config> config = LoadConfig(args->positional[0]);
  absl::StatusOr<ExportReport> report =
      config.ok() ? ExportCheckpoint(config->model, args->Get("checkpoint"), args->Get("output"))
                  : absl::StatusOr<ExportReport>(config.status());
  if (!report.ok()) {
    std::fprintf(stderr, "spillway: %s\n", std::string(report.status().message()).c_str());
    return kExitFailure;
  }
  std::printf("exported step %lld (written by %d rank%s): %zu tensors, %zu parameters -> %s\n",
              static_cast<long long>(report->step), report->saved_ranks,
              report->saved_ranks == 1 ? "" : "s", report->tensors, report->parameters,
              args->Get("output").c_str());
  return kExitOk;
}

}  // namespace spillway
