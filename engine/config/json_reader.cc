#include "engine/config/json_reader.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"

namespace spillway::config_internal {
namespace {

constexpr size_t kMaxDescribed = 60;

std::string Truncate(std::string s) {
  if (s.size() > kMaxDescribed) s = s.substr(0, kMaxDescribed) + "...";
  return s;
}

std::string IntRangeString(int64_t min, int64_t max) {
  if (max == std::numeric_limits<int64_t>::max()) return absl::StrCat(">= ", min);
  if (min == std::numeric_limits<int64_t>::min()) return absl::StrCat("<= ", max);
  return absl::StrCat("in [", min, ", ", max, "]");
}

// Levenshtein distance, for "did you mean" suggestions.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The allowed key closest to `key`, or "" when none is close.
std::string ClosestKey(absl::string_view key, absl::Span<const absl::string_view> allowed) {
  std::string best;
  size_t best_distance = std::max<size_t>(1, key.size() / 3) + 1;
  for (absl::string_view candidate : allowed) {
    size_t d = absl::EqualsIgnoreCase(key, candidate) ? 0 : EditDistance(key, candidate);
    if (d < best_distance && d < candidate.size()) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  return best;
}

}  // namespace

absl::Status KeyError(absl::string_view path, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(path.empty() ? absl::string_view("(top level)") : path, ": ", message));
}

std::string Describe(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return absl::StrCat(value.get<bool>() ? "true" : "false", " (a boolean)");
    case Json::value_t::string:
      return absl::StrCat(Truncate(value.dump()), " (a string)");
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array: {
      std::string dumped = value.dump();
      return dumped.size() <= kMaxDescribed ? absl::StrCat("an array ", dumped) : "an array";
    }
    case Json::value_t::number_float:
      return absl::StrCat(value.dump(), " (a floating-point number)");
    default:
      return value.dump();
  }
}

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(parent, ".", key);
}

bool DoubleRange::Contains(double v) const {
  const bool above_lo = lo_open ? v > lo : v >= lo;
  const bool below_hi = hi_open ? v < hi : v <= hi;
  return above_lo && below_hi;
}

std::string DoubleRange::ToString() const {
  const bool has_lo = std::isfinite(lo);
  const bool has_hi = std::isfinite(hi);
  if (has_lo && has_hi) {
    return absl::StrCat("in ", lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]");
  }
  if (has_lo) return absl::StrCat(lo_open ? "> " : ">= ", lo);
  if (has_hi) return absl::StrCat(hi_open ? "< " : "<= ", hi);
  return "finite";
}

absl::StatusOr<int64_t> ReadInt(const Json& value, absl::string_view path, int64_t min,
                                int64_t max) {
  const std::string range = IntRangeString(min, max);
  if (!value.is_number_integer()) {
    return KeyError(path, absl::StrCat("expected an integer ", range, ", found ", Describe(value)));
  }
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (max < 0 || u > static_cast<uint64_t>(max) || static_cast<int64_t>(u) < min) {
      return KeyError(path, absl::StrCat("must be ", range, ", found ", u));
    }
    return static_cast<int64_t>(u);
  }
  const int64_t v = value.get<int64_t>();
  if (v < min || v > max) return KeyError(path, absl::StrCat("must be ", range, ", found ", v));
  return v;
}

absl::StatusOr<uint64_t> ReadUint64(const Json& value, absl::string_view path) {
  if (!value.is_number_integer()) {
    return KeyError(
        path, absl::StrCat("expected a non-negative integer (uint64), found ", Describe(value)));
  }
  if (!value.is_number_unsigned() && value.get<int64_t>() < 0) {
    return KeyError(path, absl::StrCat("must be a non-negative integer (uint64), found ",
                                       value.get<int64_t>()));
  }
  return value.get<uint64_t>();
}

absl::StatusOr<double> ReadDouble(const Json& value, absl::string_view path,
                                  const DoubleRange& range) {
  if (!value.is_number()) {
    return KeyError(
        path, absl::StrCat("expected a number ", range.ToString(), ", found ", Describe(value)));
  }
  const double v = value.get<double>();
  if (!std::isfinite(v)) {
    return KeyError(path, absl::StrCat("must be a finite number, found ", value.dump()));
  }
  if (!range.Contains(v)) {
    return KeyError(path, absl::StrCat("must be ", range.ToString(), ", found ", value.dump()));
  }
  return v;
}

absl::StatusOr<bool> ReadBool(const Json& value, absl::string_view path) {
  if (!value.is_boolean()) {
    return KeyError(path, absl::StrCat("expected true or false, found ", Describe(value)));
  }
  return value.get<bool>();
}

absl::StatusOr<std::string> ReadString(const Json& value, absl::string_view path,
                                       std::initializer_list<absl::string_view> allowed) {
  std::vector<std::string> quoted;
  for (absl::string_view a : allowed) quoted.push_back(absl::StrCat("\"", a, "\""));
  const std::string one_of = allowed.size() <= 1
                                 ? absl::StrJoin(quoted, "")
                                 : absl::StrCat("one of ", absl::StrJoin(quoted, ", "));
  if (!value.is_string()) {
    return KeyError(path,
                    absl::StrCat("expected a string", allowed.size() == 0 ? "" : " (", one_of,
                                 allowed.size() == 0 ? "" : ")", ", found ", Describe(value)));
  }
  std::string s = value.get<std::string>();
  if (allowed.size() == 0) return s;
  for (absl::string_view a : allowed) {
    if (s == a) return s;
  }
  return KeyError(path, absl::StrCat("must be ", one_of, ", found ", Truncate(value.dump())));
}

absl::StatusOr<ObjectReader> ObjectReader::Open(const Json& value, std::string path) {
  if (!value.is_object()) {
    return KeyError(path, absl::StrCat("expected an object, found ", Describe(value)));
  }
  return ObjectReader(value, std::move(path));
}

const Json* ObjectReader::Find(absl::string_view key) const {
  auto it = object_->find(std::string(key));
  return it == object_->end() ? nullptr : &*it;
}

absl::Status ObjectReader::CheckKeys(absl::Span<const absl::string_view> allowed) const {
  for (const auto& [key, unused] : object_->items()) {
    if (std::find(allowed.begin(), allowed.end(), absl::string_view(key)) != allowed.end()) {
      continue;
    }
    std::vector<absl::string_view> sorted(allowed.begin(), allowed.end());
    std::sort(sorted.begin(), sorted.end());
    std::string message = absl::StrCat("unknown key; ", path_.empty() ? "the top level" : path_,
                                       " allows: ", absl::StrJoin(sorted, ", "));
    const std::string closest = ClosestKey(key, allowed);
    if (!closest.empty()) absl::StrAppend(&message, ". Did you mean \"", closest, "\"?");
    return KeyError(KeyPath(key), message);
  }
  return absl::OkStatus();
}

absl::Status ObjectReader::Require(absl::string_view key) const {
  if (Has(key)) return absl::OkStatus();
  return KeyError(KeyPath(key), "is required but missing");
}

absl::Status ObjectReader::Int(absl::string_view key, int64_t* out, int64_t min, int64_t max,
                               bool required) const {
  const Json* v = Find(key);
  if (v == nullptr) return required ? Require(key) : absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(*out, ReadInt(*v, KeyPath(key), min, max));
  return absl::OkStatus();
}

absl::Status ObjectReader::Int(absl::string_view key, int* out, int min, int max,
                               bool required) const {
  int64_t wide = *out;
  SPW_RETURN_IF_ERROR(Int(key, &wide, min, max, required));
  *out = static_cast<int>(wide);
  return absl::OkStatus();
}

absl::Status ObjectReader::Uint64(absl::string_view key, uint64_t* out, bool required) const {
  const Json* v = Find(key);
  if (v == nullptr) return required ? Require(key) : absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(*out, ReadUint64(*v, KeyPath(key)));
  return absl::OkStatus();
}

absl::Status ObjectReader::Double(absl::string_view key, double* out, const DoubleRange& range,
                                  bool required) const {
  const Json* v = Find(key);
  if (v == nullptr) return required ? Require(key) : absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(*out, ReadDouble(*v, KeyPath(key), range));
  return absl::OkStatus();
}

absl::Status ObjectReader::Bool(absl::string_view key, bool* out, bool required) const {
  const Json* v = Find(key);
  if (v == nullptr) return required ? Require(key) : absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(*out, ReadBool(*v, KeyPath(key)));
  return absl::OkStatus();
}

absl::Status ObjectReader::String(absl::string_view key, std::string* out,
                                  std::initializer_list<absl::string_view> allowed,
                                  bool required) const {
  const Json* v = Find(key);
  if (v == nullptr) return required ? Require(key) : absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(*out, ReadString(*v, KeyPath(key), allowed));
  return absl::OkStatus();
}

absl::Status ObjectReader::NonEmptyString(absl::string_view key, std::string* out,
                                          bool required) const {
  const Json* v = Find(key);
  if (v == nullptr) return required ? Require(key) : absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(std::string s, ReadString(*v, KeyPath(key)));
  if (s.empty()) return KeyError(KeyPath(key), "must be a non-empty string, found \"\"");
  *out = std::move(s);
  return absl::OkStatus();
}

}  // namespace spillway::config_internal
