#include <cstdio>

#include "absl/strings/numbers.h"
#include "engine/cli/args.h"
#include "engine/cli/commands.h"
#include "engine/data/prepare.h"

namespace spillway {

const char kPrepareUsage[] =
    "usage: spillway prepare --input FILE... --output PATH [--val-output PATH --val-fraction F]\n"
    "                        [--tokenizer tokenizer.json] [--format text|jsonl]\n"
    "                        [--eos auto|none|TOKEN]\n"
    "  Turns text files into a spillway token file. Without --tokenizer: the byte-level\n"
    "  tokenizer (one token per byte, vocab_size 256), the inputs' bytes concatenated in order.\n"
    "  With --tokenizer: a Hugging Face byte-level BPE tokenizer.json (GPT-2 or Llama-3 style;\n"
    "  vocab_size from it); each file is one document, followed by the EOS token.\n"
    "  --format jsonl: lines of {\"prompt\": \"...\", \"response\": \"...\"}; each example is its\n"
    "  prompt tokens, masked from the loss, then its response tokens and the EOS token.\n"
    "  --eos: auto (the tokenizer's <|endoftext|>, <|end_of_text|>, </s> or <eos>), none, or a\n"
    "  token of the tokenizer. With --val-output, the last fraction F (0 < F < 1; default 0.05)\n"
    "  of the tokens (jsonl: of the examples) goes there instead, for eval.\n";

int PrepareCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseArgs(
      argv, {"input", "output", "val-output", "val-fraction", "tokenizer", "format", "eos"},
      {"input"});
  if (!args.ok() || !args->positional.empty() || !args->Has("input") || !args->Has("output")) {
    if (!args.ok()) std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    std::fputs(kPrepareUsage, stderr);
    return kExitUsage;
  }
  PrepareOptions options;
  options.inputs = args->options.at("input");
  options.output = args->Get("output");
  options.val_output = args->Get("val-output");
  options.tokenizer = args->Get("tokenizer");
  options.eos = args->Get("eos", "auto");
  const std::string format = args->Get("format", "text");
  if (format == "jsonl") {
    options.format = PrepareFormat::kInstructions;
  } else if (format != "text") {
    std::fprintf(stderr, "--format: '%s' is not text or jsonl\n", format.c_str());
    return kExitUsage;
  }
  if (args->Has("val-output")) {
    options.val_fraction = 0.05;
    if (args->Has("val-fraction") &&
        !absl::SimpleAtod(args->Get("val-fraction"), &options.val_fraction)) {
      std::fprintf(stderr, "--val-fraction: '%s' is not a number\n",
                   args->Get("val-fraction").c_str());
      return kExitUsage;
    }
  } else if (args->Has("val-fraction")) {
    std::fputs("--val-fraction needs --val-output\n", stderr);
    return kExitUsage;
  }
  absl::StatusOr<PrepareReport> report = Prepare(options);
  if (!report.ok()) {
    std::fprintf(stderr, "spillway: %s\n", std::string(report.status().message()).c_str());
    return kExitFailure;
  }
  const bool jsonl = options.format == PrepareFormat::kInstructions;
  std::printf("%llu bytes from %zu file(s)", (unsigned long long)report->input_bytes,
              report->input_files);
  if (jsonl) std::printf(", %llu examples", (unsigned long long)report->documents);
  std::printf(": %llu tokens -> %s", (unsigned long long)report->train_tokens,
              report->output.c_str());
  if (!report->val_output.empty()) {
    std::printf(", %llu tokens", (unsigned long long)report->val_tokens);
    if (jsonl) std::printf(" (%llu examples)", (unsigned long long)report->val_documents);
    std::printf(" -> %s", report->val_output.c_str());
  }
  std::printf(" (vocab_size %u)\n", report->vocab_size);
  if (!options.tokenizer.empty() || jsonl) {
    std::printf("tokenizer %s; eos %s", report->tokenizer.c_str(),
                report->eos.empty() ? "none" : report->eos.c_str());
    if (report->eos_id >= 0) std::printf(" (id %lld)", (long long)report->eos_id);
    if (jsonl) {
      std::printf("; %llu prompt tokens masked from the loss",
                  (unsigned long long)report->masked_tokens);
    }
    std::printf("\n");
  }
  return kExitOk;
}

}  // namespace spillway
