// The spillway command-line tool.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/cli/commands.h"

namespace {

constexpr char kUsage[] =
    "spillway: train language models larger than GPU memory\n"
    "\n"
    "usage:\n"
    "  spillway train CONFIG [--resume DIR]        train from a JSON config\n"
    "  spillway eval CONFIG [--checkpoint DIR]     validation loss of a checkpoint\n"
    "  spillway prepare --input FILE... --output PATH [--val-output PATH --val-fraction F]\n"
    "                                              turn text into a token file (bytes, vocab 256)\n"
    "  spillway export CONFIG --checkpoint DIR --output FILE.safetensors\n"
    "                                              one fp32 model file from a checkpoint\n"
    "  spillway export CONFIG --checkpoint DIR --output HF_DIR --format hf [--dtype bf16]\n"
    "                                              a Hugging Face model folder from a checkpoint\n"
    "  spillway import HF_DIR OUT_DIR              a checkpoint from a Hugging Face model folder\n"
    "  spillway plan CONFIG [--world N]            memory per tier for a config, and whether it\n"
    "                                              fits this machine\n"
    "  spillway help [COMMAND]                     this text, or a command's\n"
    "\n"
    "Config keys: docs/config.md. Quick start: spillway train examples/tiny/config.json\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace spillway;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  const bool wants_help = !rest.empty() && (rest[0] == "--help" || rest[0] == "-h");
  if (command == "--help" || command == "-h" || command == "help") {
    const std::string topic = rest.empty() ? "" : rest[0];
    if (topic == "train")
      std::fputs(kTrainUsage, stdout);
    else if (topic == "eval")
      std::fputs(kEvalUsage, stdout);
    else if (topic == "prepare")
      std::fputs(kPrepareUsage, stdout);
    else if (topic == "export")
      std::fputs(kExportUsage, stdout);
    else if (topic == "import")
      std::fputs(kImportUsage, stdout);
    else if (topic == "plan")
      std::fputs(kPlanUsage, stdout);
    else
      std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (command == "train")
    return wants_help ? (std::fputs(kTrainUsage, stdout), kExitOk) : TrainCommand(rest);
  if (command == "eval")
    return wants_help ? (std::fputs(kEvalUsage, stdout), kExitOk) : EvalCommand(rest);
  if (command == "prepare") {
    return wants_help ? (std::fputs(kPrepareUsage, stdout), kExitOk) : PrepareCommand(rest);
  }
  if (command == "export") {
    return wants_help ? (std::fputs(kExportUsage, stdout), kExitOk) : ExportCommand(rest);
  }
  if (command == "import") {
    return wants_help ? (std::fputs(kImportUsage, stdout), kExitOk) : ImportCommand(rest);
  }
  if (command == "plan") {
    return wants_help ? (std::fputs(kPlanUsage, stdout), kExitOk) : PlanCommand(rest);
  }
  std::fprintf(stderr, "spillway: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return kExitUsage;
}
