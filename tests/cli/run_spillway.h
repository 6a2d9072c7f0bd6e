// Runs the spillway binary (SPILLWAY_BIN, set by ctest) with arguments, for CLI tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace spillway::testing_util {

struct CliResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

inline CliResult RunSpillway(const std::string& args) {
  const char* bin = std::getenv("SPILLWAY_BIN");
  EXPECT_NE(bin, nullptr) << "SPILLWAY_BIN is set by ctest";
  const std::string command = absl::StrCat(bin, " ", args, " 2>&1");
  std::FILE* pipe = popen(command.c_str(), "r");
  CliResult result{-1, ""};
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace spillway::testing_util
