#include "engine/data/byte_level.h"

#include <array>

namespace spillway::byte_level {
namespace {

struct Alphabet {
  std::array<std::string, 256> byte_to_char;
  // Indexed by code point: the byte + 1, or 0 for a code point outside the alphabet.
  std::array<uint16_t, 0x144> char_to_byte{};

  Alphabet() {
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const int cp = printable(b) ? b : next++;
      std::string& s = byte_to_char[b];
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      char_to_byte[cp] = static_cast<uint16_t>(b + 1);
    }
  }
};

const Alphabet& GetAlphabet() {
  static const Alphabet* alphabet = new Alphabet();
  return *alphabet;
}

}  // namespace

absl::string_view ByteToChar(uint8_t byte) { return GetAlphabet().byte_to_char[byte]; }

void AppendEncoded(absl::string_view bytes, std::string* out) {
  const Alphabet& a = GetAlphabet();
  for (char c : bytes) out->append(a.byte_to_char[static_cast<unsigned char>(c)]);
}

void AppendDecoded(absl::string_view token, std::string* out) {
  const Alphabet& a = GetAlphabet();
  const size_t start = out->size();
  const auto* s = reinterpret_cast<const unsigned char*>(token.data());
  size_t i = 0;
  while (i < token.size()) {
    // The alphabet holds one- and two-byte characters only.
    uint32_t cp;
    if (s[i] < 0x80) {
      cp = s[i];
      i += 1;
    } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < token.size() && (s[i + 1] & 0xC0) == 0x80) {
      cp = (uint32_t{s[i] & 0x1Fu} << 6) | (s[i + 1] & 0x3Fu);
      i += 2;
    } else {
      cp = 0x144;
    }
    if (cp >= a.char_to_byte.size() || a.char_to_byte[cp] == 0) {
      out->resize(start);
      out->append(token.data(), token.size());
      return;
    }
    out->push_back(static_cast<char>(a.char_to_byte[cp] - 1));
  }
}

}  // namespace spillway::byte_level
