#include "kernels/cpu/quant8.h"

#include <algorithm>
#include <array>
#include <bit>
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

// A sorted table of magnitudes in [0, 1] and, for a fast exact std::lower_bound, the index of
// the first magnitude >= the smallest float of each bucket of floats (the top bits of a
// non-negative float: exponent and 4 mantissa bits). Neighbouring magnitudes of both formats
// differ by at least 1/15 of the smaller (3 mantissa bits; more in their subnormal range), more
// than a bucket spans (1/16), so a bucket holds at most one magnitude and the search from its
// first index takes at most one step.
template <size_t kCount>
struct MagnitudeTable {
  static constexpr int kShift = 23 - 4;                              // 4 mantissa bits per bucket
  static constexpr uint32_t kBuckets = (0x3f800000u >> kShift) + 1;  // floats in [0, 1]
  std::array<float, kCount> magnitude;
  std::array<uint16_t, kBuckets> first_at_least;

  MagnitudeTable(int exp_bits, int mant_bits) : magnitude(Magnitudes<kCount>(exp_bits, mant_bits)) {
    for (uint32_t b = 0; b < kBuckets; ++b) {
      const float lo = std::bit_cast<float>(b << kShift);
      first_at_least[b] = static_cast<uint16_t>(
          std::lower_bound(magnitude.begin(), magnitude.end(), lo) - magnitude.begin());
    }
  }

  // std::lower_bound(magnitude, a) for a in [0, 1]; 0 for NaN.
  size_t LowerBound(float a) const {
    const uint32_t bucket = std::bit_cast<uint32_t>(a) >> kShift;
    if (bucket >= kBuckets) return 0;         // NaN
    const size_t k = first_at_least[bucket];  // < kCount: a <= 1 = magnitude[kCount - 1]
    return k + static_cast<size_t>(magnitude[k] < a);
  }
};

const MagnitudeTable<128>& SignedTable() {
  static const MagnitudeTable<128> table(4, 3);
  return table;
}

const MagnitudeTable<256>& UnsignedTable() {
  static const MagnitudeTable<256> table(5, 3);
  return table;
}

// Index of the magnitude nearest to a >= 0 (ties to the smaller; 0 for NaN, the largest above
// 1). Branch-free: the magnitudes' order is data-dependent.
template <size_t kCount>
uint8_t Nearest(const MagnitudeTable<kCount>& table, float a) {
  a = std::min(a, 1.0f);
  const size_t hi = std::max<size_t>(table.LowerBound(a), 1);
  const auto& m = table.magnitude;
  return static_cast<uint8_t>(hi - 1 + static_cast<size_t>(m[hi] - a < a - m[hi - 1]));
}

// Index of the lower (or the upper, with probability proportional to the distance from the
// lower) of the two magnitudes around a >= 0: unbiased rounding, with u uniform in [0, 1).
template <size_t kCount>
uint8_t Stochastic(const MagnitudeTable<kCount>& table, float a, float u) {
  a = std::min(a, 1.0f);
  const size_t hi = std::max<size_t>(table.LowerBound(a), 1);
  const float lo = table.magnitude[hi - 1];
  return static_cast<uint8_t>(hi - 1 +
                              static_cast<size_t>(u * (table.magnitude[hi] - lo) < a - lo));
}

// The signed code of magnitude index `magnitude` for x's sign (0 stays 0: no negative zero).
uint8_t WithSign(float x, uint8_t magnitude) {
  const uint32_t negative = std::bit_cast<uint32_t>(x) >> 31;  // branch-free: signs are random
  return static_cast<uint8_t>(magnitude | (negative & (magnitude != 0)) << 7);
}

// Every code's value at scale 1, signed codes with their sign.
struct DecodeTables {
  std::array<float, 256> is_signed, is_unsigned;
  DecodeTables() {
    for (int c = 0; c < 256; ++c) {
      const float magnitude = SignedTable().magnitude[c & 0x7f];
      is_signed[c] = (c & 0x80) ? -magnitude : magnitude;
      is_unsigned[c] = UnsignedTable().magnitude[c];
    }
  }
  const std::array<float, 256>& of(Quant8Code kind) const {
    return kind == Quant8Code::kSigned ? is_signed : is_unsigned;
  }
};

const DecodeTables& Decoded() {
  static const DecodeTables tables;
  return tables;
}

// SplitMix64's finaliser: a well-mixed 64-bit hash.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Codes of x[0, n) for a block of maximum `scale` > 0 (seed: as Quant8EncodeBlock).
template <bool kSigned, size_t kCount>
void EncodeValues(const MagnitudeTable<kCount>& table, const float* x, uint8_t* codes, size_t n,
                  float scale, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]) / scale;
    uint8_t magnitude;
    if (seed == 0) {
      magnitude = Nearest(table, a);
    } else {
      magnitude = Stochastic(table, a, static_cast<float>(Mix(seed + i) >> 40) * 0x1p-24f);
    }
    codes[i] = kSigned ? WithSign(x[i], magnitude) : magnitude;
  }
}

}  // namespace

uint64_t RoundingHash(uint64_t a, uint64_t b, uint64_t c) { return Mix(Mix(Mix(a) ^ b) ^ c) | 1; }

float Quant8Decode(Quant8Code kind, uint8_t code) { return Decoded().of(kind)[code]; }

uint8_t Quant8Encode(Quant8Code kind, float x, float scale) {
  const float a = std::fabs(x) / scale;
  if (kind == Quant8Code::kUnsigned) return Nearest(UnsignedTable(), a);
  return WithSign(x, Nearest(SignedTable(), a));
}

void Quant8DecodeBlock(Quant8Code kind, const uint8_t* codes, float scale, float* out, size_t n) {
  const std::array<float, 256>& value = Decoded().of(kind);
  for (size_t i = 0; i < n; ++i) out[i] = value[codes[i]] * scale;
}

float Quant8EncodeBlock(Quant8Code kind, const float* x, uint8_t* codes, size_t n, uint64_t seed) {
  float scale = 0.0f;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(x[i]));
  if (scale == 0.0f) {
    std::fill(codes, codes + n, uint8_t{0});
    return scale;
  }
  if (kind == Quant8Code::kSigned) {
    EncodeValues<true>(SignedTable(), x, codes, n, scale, seed);
  } else {
    EncodeValues<false>(UnsignedTable(), x, codes, n, scale, seed);
  }
  return scale;
}

}  // namespace spillway::kernels::cpu
