#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/cli/args.h"
#include "engine/cli/commands.h"
#include "engine/config/config.h"
#include "engine/hf/hf_model.h"
#include "engine/train/export.h"

namespace spillway {

const char kExportUsage[] =
    "usage: spillway export CONFIG --checkpoint DIR --output FILE.safetensors\n"
    "       spillway export CONFIG --checkpoint DIR --output HF_DIR --format hf\n"
    "                       [--dtype fp32|bf16] [--max-shard-size 5GB]\n"
    "  Writes the parameters of checkpoint DIR (a step directory or a checkpoint root), as\n"
    "  trained with CONFIG's model, one Unit at a time, whatever number of ranks wrote it:\n"
    "  by default into one fp32 safetensors file with spillway's tensor names; with\n"
    "  --format hf into a new Hugging Face model folder (config.json, model.safetensors or\n"
    "  shards of at most --max-shard-size with model.safetensors.index.json) that\n"
    "  transformers' from_pretrained loads.\n";

namespace {

// "5GB", "500MB", "100KB" (powers of 1000, as save_pretrained reads them) or bytes.
absl::StatusOr<uint64_t> ParseSize(const std::string& text) {
  std::string digits = absl::AsciiStrToUpper(text);
  uint64_t unit = 1;
  for (const auto& [suffix, value] : {std::pair<const char*, uint64_t>{"GB", 1'000'000'000},
                                      {"MB", 1'000'000},
                                      {"KB", 1'000},
                                      {"B", 1}}) {
    if (absl::EndsWith(digits, suffix)) {
      digits.resize(digits.size() - std::string(suffix).size());
      unit = value;
      break;
    }
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-shard-size ", text, ": expected a positive size such as 5GB, 500MB or 1000000"));
  }
  return n * unit;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "spillway: %s\n", std::string(status.message()).c_str());
  return kExitFailure;
}

int ExportHf(const Config& config, const Args& args) {
  HfWriteOptions options;
  const std::string dtype = args.Get("dtype", "fp32");
  if (dtype == "bf16") {
    options.dtype = SafetensorsDtype::kBF16;
  } else if (dtype != "fp32") {
    std::fprintf(stderr, "spillway: --dtype %s: expected fp32 or bf16\n", dtype.c_str());
    return kExitUsage;
  }
  if (args.Has("max-shard-size")) {
    absl::StatusOr<uint64_t> size = ParseSize(args.Get("max-shard-size"));
    if (!size.ok()) {
      std::fprintf(stderr, "spillway: %s\n", std::string(size.status().message()).c_str());
      return kExitUsage;
    }
    options.max_shard_bytes = *size;
  }
  absl::StatusOr<HfExportReport> report =
      ExportHfFromCheckpoint(config.model, args.Get("checkpoint"), args.Get("output"), options);
  if (!report.ok()) return Fail(report.status());
  std::printf(
      "exported step %lld (written by %d rank%s): %zu tensors, %zu parameters, %s, %d "
      "file%s -> %s\n",
      static_cast<long long>(report->step), report->saved_ranks,
      report->saved_ranks == 1 ? "" : "s", report->written.tensors, report->written.parameters,
      dtype.c_str(), report->written.shards, report->written.shards == 1 ? "" : "s",
      args.Get("output").c_str());
  return kExitOk;
}

}  // namespace

int ExportCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args =
      ParseArgs(argv, {"checkpoint", "output", "format", "dtype", "max-shard-size"});
  if (!args.ok() || args->positional.size() != 1 || !args->Has("checkpoint") ||
      !args->Has("output")) {
    if (!args.ok()) std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    std::fputs(kExportUsage, stderr);
    return kExitUsage;
  }
  const std::string format = args->Get("format", "safetensors");
  if (format != "safetensors" && format != "hf") {
    std::fprintf(stderr, "spillway: --format %s: expected safetensors or hf\n\n%s", format.c_str(),
                 kExportUsage);
    return kExitUsage;
  }
  if (format != "hf" && (args->Has("dtype") || args->Has("max-shard-size"))) {
    std::fprintf(stderr, "spillway: --dtype and --max-shard-size need --format hf\n");
    return kExitUsage;
  }
  absl::StatusOr<Config> config = LoadConfig(args->positional[0]);
  if (!config.ok()) return Fail(config.status());
  if (format == "hf") return ExportHf(*config, *args);
  absl::StatusOr<ExportReport> report =
      ExportCheckpoint(config->model, args->Get("checkpoint"), args->Get("output"));
  if (!report.ok()) return Fail(report.status());
  std::printf("exported step %lld (written by %d rank%s): %zu tensors, %zu parameters -> %s\n",
              static_cast<long long>(report->step), report->saved_ranks,
              report->saved_ranks == 1 ? "" : "s", report->tensors, report->parameters,
              args->Get("output").c_str());
  return kExitOk;
}

}  // namespace spillway
