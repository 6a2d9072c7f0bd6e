#include <cstdio>

#include "absl/strings/numbers.h"
#include "engine/cli/args.h"
#include "engine/cli/commands.h"
#include "engine/data/prepare.h"

namespace spillway {

const char kPrepareUsage[] =
    "usage: spillway prepare --input FILE... --output PATH [--val-output PATH --val-fraction F]\n"
    "  Turns text files into a spillway token file with the byte-level tokenizer (one token per\n"
    "  byte, vocab_size 256): the inputs' bytes, concatenated in order. With --val-output, the\n"
    "  last fraction F (0 < F < 1; default 0.05) of the tokens goes there instead, for eval.\n";

int PrepareCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args =
      ParseArgs(argv, {"input", "output", "val-output", "val-fraction"}, {"input"});
  if (!args.ok() || !args->positional.empty() || !args->Has("input") || !args->Has("output")) {
    if (!args.ok()) std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    std::fputs(kPrepareUsage, stderr);
    return kExitUsage;
  }
  double val_fraction = 0.0;
  if (args->Has("val-output")) {
    val_fraction = 0.05;
    if (args->Has("val-fraction") && !absl::SimpleAtod(args->Get("val-fraction"), &val_fraction)) {
      std::fprintf(stderr, "--val-fraction: '%s' is not a number\n",
                   args->Get("val-fraction").c_str());
      return kExitUsage;
    }
  } else if (args->Has("val-fraction")) {
    std::fputs("--val-fraction needs --val-output\n", stderr);
    return kExitUsage;
  }
  absl::StatusOr<PrepareReport> report = PrepareTextFiles(
      args->options.at("input"), args->Get("output"), args->Get("val-output"), val_fraction);
  if (!report.ok()) {
    std::fprintf(stderr, "spillway: %s\n", std::string(report.status().message()).c_str());
    return kExitFailure;
  }
  std::printf("%llu bytes from %zu file(s): %llu tokens -> %s",
              (unsigned long long)report->input_bytes, report->input_files,
              (unsigned long long)report->train_tokens, report->output.c_str());
  if (!report->val_output.empty()) {
    std::printf(", %llu tokens -> %s", (unsigned long long)report->val_tokens,
                report->val_output.c_str());
  }
  std::printf(" (vocab_size %u)\n", report->vocab_size);
  return kExitOk;
}

}  // namespace spillway
