// GPT-2's byte-level alphabet, as Hugging Face's ByteLevel pre-tokenizer and decoder use it.
//
// Each of the 256 byte values stands as one printable character: the printable Latin-1 bytes
// ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) as themselves, the other 68 bytes, in increasing order,
// as U+0100..U+0143 (so ' ' is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A). Any byte string becomes a
// string of these characters, which a BPE vocabulary can hold whole.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace spillway::byte_level {

// The UTF-8 of the character that stands for `byte`.
absl::string_view ByteToChar(uint8_t byte);

// Appends each byte of `bytes` as its character.
void AppendEncoded(absl::string_view bytes, std::string* out);

// Appends the bytes that `token` (UTF-8) stands for, as HF's ByteLevel decoder does: each
// character mapped back to its byte when every character of the token is in the alphabet,
// otherwise the token's own bytes (e.g. an added token such as "<|user name|>", whose space is
// not in the alphabet).
void AppendDecoded(absl::string_view token, std::string* out);

}  // namespace spillway::byte_level
