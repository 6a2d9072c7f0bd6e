// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
#pragma once

#include <cstddef>

#include "absl/strings/string_view.h"

namespace spillway::utf8 {

// The length of the longest prefix of `text` that is valid UTF-8; text.size() when all of it is.
size_t ValidPrefixLength(absl::string_view text);

// The byte length of the character that starts at text[i]; text must be valid UTF-8 and
// i < text.size() a character boundary.
inline size_t CharLength(absl::string_view text, size_t i) {
  const unsigned char lead = static_cast<unsigned char>(text[i]);
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

}  // namespace spillway::utf8
