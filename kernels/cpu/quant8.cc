#include "kernels/cpu/quant8.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace spillway::kernels::cpu {
namespace {

// Ascending magnitudes of a tiny float with `exp_bits` exponent and `mant_bits` mantissa bits
// (IEEE-like, subnormals, no infinities), divided by the largest so that the last one is 1.
template <size_t kCount>
std::array<float, kCount> Magnitudes(int exp_bits, int mant_bits) {
  std::array<double, kCount> raw{};
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int mant_count = 1 << mant_bits;
  for (size_t k = 0; k < kCount; ++k) {
    const int e = static_cast<int>(k) >> mant_bits;
    const int f = static_cast<int>(k) & (mant_count - 1);
    raw[k] = e == 0 ? std::ldexp(static_cast<double>(f) / mant_count, 1 - bias)
                    : std::ldexp(1.0 + static_cast<double>(f) / mant_count, e - bias);
  }
  std::array<float, kCount> out{};
  for (size_t k = 0; k < kCount; ++k) out[k] = static_cast<float>(raw[k] / raw[kCount - 1]);
  return out;
}

const std::array<float, 128>& SignedMagnitudes() {
  static const std::array<float, 128> table = Magnitudes<128>(4, 3);
  return table;
}

const std::array<float, 256>& UnsignedMagnitudes() {
  static const std::array<float, 256> table = Magnitudes<256>(5, 3);
  return table;
}

// Index of the magnitude nearest to a (ties to the smaller).
template <size_t kCount>
uint8_t Nearest(const std::array<float, kCount>& table, float a) {
  const auto upper = std::lower_bound(table.begin(), table.end(), a);
  if (upper == table.begin()) return 0;
  if (upper == table.end()) return static_cast<uint8_t>(kCount - 1);
  const size_t hi = static_cast<size_t>(upper - table.begin());
  return static_cast<uint8_t>(*upper - a < a - table[hi - 1] ? hi : hi - 1);
}

// Index of the lower (or the upper, with probability proportional to the distance from the
// lower) of the two magnitudes around a: unbiased rounding, with u uniform in [0, 1).
template <size_t kCount>
uint8_t Stochastic(const std::array<float, kCount>& table, float a, float u) {
  const auto upper = std::lower_bound(table.begin(), table.end(), a);
  if (upper == table.begin()) return 0;
  if (upper == table.end()) return static_cast<uint8_t>(kCount - 1);
  const size_t hi = static_cast<size_t>(upper - table.begin());
  const float lo = table[hi - 1];
  return static_cast<uint8_t>(u * (*upper - lo) < a - lo ? hi : hi - 1);
}

// SplitMix64's finaliser: a well-mixed 64-bit hash.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t RoundingHash(uint64_t a, uint64_t b, uint64_t c) { return Mix(Mix(Mix(a) ^ b) ^ c) | 1; }

float Quant8Decode(Quant8Code kind, uint8_t code) {
  if (kind == Quant8Code::kUnsigned) return UnsignedMagnitudes()[code];
  const float magnitude = SignedMagnitudes()[code & 0x7f];
  return (code & 0x80) ? -magnitude : magnitude;
}

uint8_t Quant8Encode(Quant8Code kind, float x, float scale) {
  const float a = std::fabs(x) / scale;
  if (kind == Quant8Code::kUnsigned) return Nearest(UnsignedMagnitudes(), a);
  const uint8_t magnitude = Nearest(SignedMagnitudes(), a);
  return std::signbit(x) && magnitude != 0 ? static_cast<uint8_t>(0x80 | magnitude) : magnitude;
}

void Quant8DecodeBlock(Quant8Code kind, const uint8_t* codes, float scale, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = Quant8Decode(kind, codes[i]) * scale;
}

float Quant8EncodeBlock(Quant8Code kind, const float* x, uint8_t* codes, size_t n, uint64_t seed) {
  float scale = 0.0f;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(x[i]));
  if (scale == 0.0f) {
    std::fill(codes, codes + n, uint8_t{0});
    return scale;
  }
  if (seed == 0) {
    for (size_t i = 0; i < n; ++i) codes[i] = Quant8Encode(kind, x[i], scale);
    return scale;
  }
  for (size_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]) / scale;
    const float u = static_cast<float>(Mix(seed + i) >> 40) * 0x1p-24f;
    if (kind == Quant8Code::kUnsigned) {
      codes[i] = Stochastic(UnsignedMagnitudes(), a, u);
    } else {
      const uint8_t magnitude = Stochastic(SignedMagnitudes(), a, u);
      codes[i] =
          std::signbit(x[i]) && magnitude != 0 ? static_cast<uint8_t>(0x80 | magnitude) : magnitude;
    }
  }
  return scale;
}

}  // namespace spillway::kernels::cpu
