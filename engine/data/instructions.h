// The JSONL instruction format of `spillway prepare --format jsonl`: one example per line,
//   {"prompt": "...", "response": "..."}
// Other keys are ignored; blank lines are skipped. docs/data.md shows how an example becomes
// tokens with a loss mask.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

struct InstructionExample {
  std::string prompt;
  std::string response;
  size_t line = 0;  // 1-based, in its file
};

// Parses the JSONL `text` of the file `path`. InvalidArgument "path:LINE: ..." for a line that
// is not a JSON object or lacks "prompt" or "response" or has one that is not a string, and
// "path: ..." for a file without examples.
absl::StatusOr<std::vector<InstructionExample>> ParseInstructions(absl::string_view text,
                                                                  absl::string_view path);

}  // namespace spillway
