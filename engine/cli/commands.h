// The spillway subcommands. Each takes the arguments after its name and returns the process
// exit code: 0 success, 1 failure (message printed to stderr), 2 bad usage.
#pragma once

#include <string>
#include <vector>

namespace spillway {

int TrainCommand(const std::vector<std::string>& args);
int EvalCommand(const std::vector<std::string>& args);
int PrepareCommand(const std::vector<std::string>& args);
int ExportCommand(const std::vector<std::string>& args);
int ImportCommand(const std::vector<std::string>& args);
int PlanCommand(const std::vector<std::string>& args);

extern const char kTrainUsage[];
extern const char kEvalUsage[];
extern const char kPrepareUsage[];
extern const char kExportUsage[];
extern const char kImportUsage[];
extern const char kPlanUsage[];

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

}  // namespace spillway
