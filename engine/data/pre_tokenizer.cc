#include "engine/data/pre_tokenizer.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "engine/data/byte_level.h"

namespace spillway {
namespace {

struct Range {
  size_t begin = 0;
  size_t end = 0;
};

// Groups a left-to-right stream of matches and gaps into pieces as HF's
// NormalizedString::split does for one SplitDelimiterBehavior, and emits the non-empty ones.
class Grouper {
 public:
  Grouper(absl::string_view text, SplitBehavior behavior,
          absl::FunctionRef<absl::Status(absl::string_view)> emit)
      : text_(text), behavior_(behavior), emit_(emit) {}

  absl::Status Add(Range range, bool is_match) {
    switch (behavior_) {
      case SplitBehavior::kIsolated:
        return Emit(range);
      case SplitBehavior::kRemoved:
        return is_match ? absl::OkStatus() : Emit(range);
      case SplitBehavior::kContiguous:
        if (pending_ && is_match == previous_match_) {
          pending_->end = range.end;
        } else {
          SPW_RETURN_IF_ERROR(Flush());
          pending_ = range;
        }
        break;
      case SplitBehavior::kMergedWithPrevious:
        if (pending_ && is_match && !previous_match_) {
          pending_->end = range.end;
        } else {
          SPW_RETURN_IF_ERROR(Flush());
          pending_ = range;
        }
        break;
      case SplitBehavior::kMergedWithNext:
        // A match joins the range after it when that range is not a match itself.
        if (pending_ && !is_match) {
          pending_->end = range.end;
          SPW_RETURN_IF_ERROR(Flush());
        } else {
          SPW_RETURN_IF_ERROR(Flush());
          if (is_match) {
            pending_ = range;
          } else {
            SPW_RETURN_IF_ERROR(Emit(range));
          }
        }
        break;
    }
    previous_match_ = is_match;
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (!pending_) return absl::OkStatus();
    const Range range = *pending_;
    pending_.reset();
    return Emit(range);
  }

 private:
  absl::Status Emit(Range range) {
    if (range.end == range.begin) return absl::OkStatus();
    return emit_(text_.substr(range.begin, range.end - range.begin));
  }

  absl::string_view text_;
  SplitBehavior behavior_;
  absl::FunctionRef<absl::Status(absl::string_view)> emit_;
  std::optional<Range> pending_;
  bool previous_match_ = false;
};

// The pieces of `text` around the matches of `regex`, grouped per `behavior`.
absl::Status SplitPieces(const Regex& regex, SplitBehavior behavior, bool invert,
                         absl::string_view text,
                         absl::FunctionRef<absl::Status(absl::string_view)> emit) {
  Grouper grouper(text, behavior, emit);
  size_t previous_end = 0;
  SPW_RETURN_IF_ERROR(regex.ForEachMatch(text, [&](Regex::Match m) -> absl::Status {
    if (m.begin != previous_end) {
      SPW_RETURN_IF_ERROR(grouper.Add({previous_end, m.begin}, invert));
    }
    previous_end = m.end;
    return grouper.Add({m.begin, m.end}, !invert);
  }));
  if (previous_end != text.size()) {
    SPW_RETURN_IF_ERROR(grouper.Add({previous_end, text.size()}, invert));
  }
  return grouper.Flush();
}

}  // namespace

void PreTokenizer::AddSplit(Regex regex, SplitBehavior behavior, bool invert) {
  Step step;
  step.behavior = behavior;
  step.invert = invert;
  step.regex.push_back(std::move(regex));
  steps_.push_back(std::move(step));
}

absl::Status PreTokenizer::AddByteLevel(bool add_prefix_space, bool use_regex) {
  Step step;
  step.byte_level = true;
  step.add_prefix_space = add_prefix_space;
  step.use_regex = use_regex;
  if (use_regex) {
    SPW_ASSIGN_OR_RETURN(Regex regex, Regex::Compile(kGpt2Pattern));
    step.regex.push_back(std::move(regex));
  }
  steps_.push_back(std::move(step));
  return absl::OkStatus();
}

bool PreTokenizer::has_byte_level() const {
  for (const Step& step : steps_) {
    if (step.byte_level) return true;
  }
  return false;
}

absl::Status PreTokenizer::Run(absl::string_view text,
                               absl::FunctionRef<absl::Status(absl::string_view)> emit) const {
  if (text.empty()) return absl::OkStatus();
  return RunFrom(0, text, emit);
}

absl::Status PreTokenizer::RunFrom(size_t index, absl::string_view piece,
                                   absl::FunctionRef<absl::Status(absl::string_view)> emit) const {
  if (index == steps_.size()) return emit(piece);
  const Step& step = steps_[index];
  auto next = [&](absl::string_view sub) { return RunFrom(index + 1, sub, emit); };
  if (!step.byte_level) return SplitPieces(step.regex[0], step.behavior, step.invert, piece, next);
  std::string prefixed;
  if (step.add_prefix_space && piece.front() != ' ') {
    prefixed = absl::StrCat(" ", piece);
    piece = prefixed;
  }
  std::string mapped;
  auto map_bytes = [&](absl::string_view sub) {
    mapped.clear();
    byte_level::AppendEncoded(sub, &mapped);
    return next(mapped);
  };
  if (!step.use_regex) return map_bytes(piece);
  return SplitPieces(step.regex[0], SplitBehavior::kIsolated, /*invert=*/false, piece, map_bytes);
}

}  // namespace spillway
