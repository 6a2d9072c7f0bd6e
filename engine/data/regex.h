// A compiled PCRE2 pattern in UTF mode with Unicode properties (PCRE2_UTF | PCRE2_UCP), so that
// \p{L}, \p{N}, \s and lookahead behave as in the Oniguruma patterns of Hugging Face tokenizers.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

class Regex {
 public:
  struct Match {
    size_t begin = 0;
    size_t end = 0;  // one past the last byte
  };

  // Compiles `pattern` (with `literal`, the text itself, not a pattern). InvalidArgument with
  // PCRE2's message and the offset in the pattern if it does not compile.
  static absl::StatusOr<Regex> Compile(absl::string_view pattern, bool literal = false);

  // Calls `fn` with every non-overlapping match in `subject`, left to right, as byte offsets;
  // after an empty match the search goes on one character later. `subject` must be valid UTF-8
  // (not checked again). Stops at the first error of `fn`; fails too if PCRE2 does (e.g. its
  // match limit).
  absl::Status ForEachMatch(absl::string_view subject,
                            absl::FunctionRef<absl::Status(Match)> fn) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct CodeDeleter {
    void operator()(void* code) const;
  };
  Regex() = default;

  std::string pattern_;
  std::unique_ptr<void, CodeDeleter> code_;  // a pcre2_code_8
};

}  // namespace spillway
