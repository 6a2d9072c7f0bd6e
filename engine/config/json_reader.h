// Private to spillway_config: typed, range-checked reads from parsed JSON, where every error
// is an InvalidArgument that names the full key path ("optimizer.params.betas[1]"), what was
// found and what is allowed.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"

namespace spillway::config_internal {

using Json = nlohmann::json;

// "path: message", as InvalidArgument. An empty path reads "(top level)".
absl::Status KeyError(absl::string_view path, absl::string_view message);

// A short human description of a JSON value: `"abc" (a string)`, `2.5`, `true`, `null`,
// `an object`, `an array [1, 2]`. Long values are truncated.
std::string Describe(const Json& value);

// "parent.key", or "key" when parent is empty.
std::string JoinPath(absl::string_view parent, absl::string_view key);

// Allowed interval for a floating-point value; endpoints may be open or infinite.
struct DoubleRange {
  double lo = -std::numeric_limits<double>::infinity();
  bool lo_open = false;
  double hi = std::numeric_limits<double>::infinity();
  bool hi_open = false;

  static DoubleRange AtLeast(double lo) { return {lo, false}; }
  static DoubleRange Above(double lo) { return {lo, true}; }
  static DoubleRange Closed(double lo, double hi) { return {lo, false, hi, false}; }
  static DoubleRange HalfOpen(double lo, double hi) { return {lo, false, hi, true}; }

  bool Contains(double v) const;
  std::string ToString() const;  // "> 0", ">= 0", "in [0, 1)"
};

// Value readers: `path` names the value in errors.
absl::StatusOr<int64_t> ReadInt(const Json& value, absl::string_view path, int64_t min,
                                int64_t max);
absl::StatusOr<uint64_t> ReadUint64(const Json& value, absl::string_view path);
absl::StatusOr<double> ReadDouble(const Json& value, absl::string_view path,
                                  const DoubleRange& range);
absl::StatusOr<bool> ReadBool(const Json& value, absl::string_view path);
// A string; when `allowed` is non-empty the value must be one of them.
absl::StatusOr<std::string> ReadString(const Json& value, absl::string_view path,
                                       std::initializer_list<absl::string_view> allowed = {});

// Reads the members of one JSON object. Absent keys leave outputs unchanged, unless the
// read is marked required, which makes absence an error. JSON null counts as present.
class ObjectReader {
 public:
  // Errors unless `value` is an object.
  static absl::StatusOr<ObjectReader> Open(const Json& value, std::string path);

  const std::string& path() const { return path_; }
  std::string KeyPath(absl::string_view key) const { return JoinPath(path_, key); }
  const Json* Find(absl::string_view key) const;  // nullptr when absent
  bool Has(absl::string_view key) const { return Find(key) != nullptr; }

  // Errors on the first key (in sorted order) that is not in `allowed`; the message lists the
  // allowed keys and suggests a close match.
  absl::Status CheckKeys(absl::Span<const absl::string_view> allowed) const;
  // Errors unless `key` is present.
  absl::Status Require(absl::string_view key) const;

  absl::Status Int(absl::string_view key, int64_t* out, int64_t min, int64_t max,
                   bool required = false) const;
  absl::Status Int(absl::string_view key, int* out, int min, int max, bool required = false) const;
  absl::Status Uint64(absl::string_view key, uint64_t* out, bool required = false) const;
  absl::Status Double(absl::string_view key, double* out, const DoubleRange& range,
                      bool required = false) const;
  absl::Status Bool(absl::string_view key, bool* out, bool required = false) const;
  absl::Status String(absl::string_view key, std::string* out,
                      std::initializer_list<absl::string_view> allowed = {},
                      bool required = false) const;
  // A string that must not be empty (a path).
  absl::Status NonEmptyString(absl::string_view key, std::string* out, bool required = false) const;

 private:
  ObjectReader(const Json& object, std::string path) : object_(&object), path_(std::move(path)) {}

  const Json* object_;
  std::string path_;
};

}  // namespace spillway::config_internal
