#include "engine/data/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "engine/data/utf8.h"

namespace spillway {
namespace {

std::string Pcre2Message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) {
    return absl::StrCat("PCRE2 error ", code);
  }
  return std::string(reinterpret_cast<const char*>(buffer));
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

}  // namespace

void Regex::CodeDeleter::operator()(void* code) const {
  pcre2_code_free(static_cast<pcre2_code*>(code));
}

absl::StatusOr<Regex> Regex::Compile(absl::string_view pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("regex does not compile at offset ", error_offset, ": ", Pcre2Message(error)));
  }
  Regex regex;
  regex.pattern_ = std::string(pattern);
  regex.code_.reset(code);
  // JIT is an optional speed-up: where PCRE2 was built without it, the interpreter matches.
  const int jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  if (jit != 0 && jit != PCRE2_ERROR_JIT_BADOPTION) {
    return absl::InternalError(absl::StrCat("regex JIT compilation failed: ", Pcre2Message(jit)));
  }
  return regex;
}

absl::Status Regex::ForEachMatch(absl::string_view subject,
                                 absl::FunctionRef<absl::Status(Match)> fn) const {
  const auto* code = static_cast<const pcre2_code*>(code_.get());
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code, nullptr));
  if (data == nullptr) return absl::ResourceExhaustedError("regex: out of memory for match data");
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t offset = 0;
  while (offset <= subject.size()) {
    const int rc =
        pcre2_match(code, s, subject.size(), offset, PCRE2_NO_UTF_CHECK, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return absl::InternalError(
          absl::StrCat("regex match failed at byte ", offset, ": ", Pcre2Message(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const Match m{ovector[0], ovector[1]};
    absl::Status status = fn(m);
    if (!status.ok()) return status;
    if (m.end > m.begin) {
      offset = m.end;
    } else if (m.begin < subject.size()) {
      offset = m.begin + utf8::CharLength(subject, m.begin);
    } else {
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace spillway
