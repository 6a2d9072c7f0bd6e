// Private to spillway_config: strict JSON text parsing without exceptions.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config/json_reader.h"

namespace spillway::config_internal {

// Parses `text` as one JSON value. Malformed text is InvalidArgument "not valid JSON: parse
// error at line L, column C: ..."; a key repeated within one object is InvalidArgument naming
// its key path (JSON leaves duplicates undefined; silently keeping the last would hide typos).
absl::StatusOr<Json> ParseJsonStrict(absl::string_view text);

}  // namespace spillway::config_internal
