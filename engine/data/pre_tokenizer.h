// Hugging Face pre-tokenization for byte-level BPE: a sequence of steps that cuts text into
// pieces, each of which the BPE model then encodes on its own.
//  - Split (HF's Split pre-tokenizer): the regex's matches and the gaps between them, grouped
//    per SplitBehavior as HF's SplitDelimiterBehavior does (with `invert`, matches and gaps
//    trade roles); empty pieces are dropped.
//  - ByteLevel: with add_prefix_space a space before each piece that does not start with one;
//    with use_regex a split by GPT-2's pattern (kGpt2Pattern, Isolated); then each piece's bytes
//    as characters of the byte-level alphabet (byte_level.h).
// Each step works on every piece of the step before, as HF's Sequence does.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/data/regex.h"

namespace spillway {

// The pattern of HF's ByteLevel pre-tokenizer with use_regex (GPT-2's).
inline constexpr absl::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

class PreTokenizer {
 public:
  void AddSplit(Regex regex, SplitBehavior behavior, bool invert);
  // Fails only if kGpt2Pattern does not compile (a PCRE2 without Unicode support).
  absl::Status AddByteLevel(bool add_prefix_space, bool use_regex);

  bool has_byte_level() const;

  // Calls `emit` with each piece of `text` (valid UTF-8), in order; stops at the first error.
  absl::Status Run(absl::string_view text,
                   absl::FunctionRef<absl::Status(absl::string_view)> emit) const;

 private:
  struct Step {
    bool byte_level = false;
    bool add_prefix_space = false;  // ByteLevel
    bool use_regex = false;         // ByteLevel
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;       // Split
    std::vector<Regex> regex;  // none, or one (Split; ByteLevel with use_regex)
  };

  absl::Status RunFrom(size_t step, absl::string_view piece,
                       absl::FunctionRef<absl::Status(absl::string_view)> emit) const;

  std::vector<Step> steps_;
};

}  // namespace spillway
